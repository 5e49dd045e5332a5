package evidence

import "fmt"

func fmtSscanf(l string, hh, mm, ss, us, sp, dp *int, rest *string) (int, error) {
	return fmt.Sscanf(l, "%d:%d:%d.%d IP 10.0.0.1.%d > 10.0.0.2.%d:%s", hh, mm, ss, us, sp, dp, rest)
}
