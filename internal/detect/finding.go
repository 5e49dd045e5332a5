package detect

import "padlock/internal/detect/detector"

// The finding types are defined in package detector (so that the detector
// packages, which detect imports, can build them) and are aliased here: for
// every user, detect.Finding is the type. See detector/finding.go for the
// field documentation.
type (
	Kind      = detector.Kind
	Direction = detector.Direction
	Counters  = detector.Counters
	External  = detector.External
	Summary   = detector.Summary
	Probe     = detector.Probe
	Finding   = detector.Finding
	// Duration is a time.Duration that reads and writes "300s"/"5m" in YAML.
	Duration = detector.Duration
)

// Kinds lists every kind of finding.
var Kinds = detector.Kinds

const (
	KindPacketLimit   = detector.KindPacketLimit
	KindNetscan       = detector.KindNetscan
	KindAttack        = detector.KindAttack
	KindSpam          = detector.KindSpam
	KindIncorrectConf = detector.KindIncorrectConf

	DirOut = detector.DirOut
	DirIn  = detector.DirIn
)
