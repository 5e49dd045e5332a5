package lock

import "fmt"

// Role is what an actor may do.
type Role string

const (
	RoleAdmin    Role = "admin"    // everything, including inventory import
	RoleStaff    Role = "staff"    // abuse/NOC staff: locks, unlocks, decisions, inventory
	RoleBilling  Role = "billing"  // reads; locks and unlocks for non_payment only
	RoleReadonly Role = "readonly" // reads only
	RoleCustomer Role = "customer" // its own products only
	RoleSystem   Role = "system"   // padlock itself (detection pipeline, deadline sweeper)
)

// Roles lists the roles a token may carry.
var Roles = []Role{RoleAdmin, RoleStaff, RoleBilling, RoleReadonly, RoleCustomer}

// ValidRole reports whether r is a role a token may carry.
func ValidRole(r Role) bool {
	for _, x := range Roles {
		if x == r {
			return true
		}
	}
	return false
}

// Actor is who calls the service. Every Service method takes one; the
// service decides from it what the call may see and do.
type Actor struct {
	Role Role
	// CustomerID is the customer a RoleCustomer actor acts as.
	CustomerID int64
	// Name identifies the person or system for the audit log
	// ("alice", "billing-sync", "token:7").
	Name string
}

// System is the actor for padlock's own automatic changes.
var System = Actor{Role: RoleSystem, Name: "padlock"}

// String is the actor as the audit log records it.
func (a Actor) String() string {
	if a.Role == RoleCustomer {
		if a.Name != "" {
			return fmt.Sprintf("customer:%d:%s", a.CustomerID, a.Name)
		}
		return fmt.Sprintf("customer:%d", a.CustomerID)
	}
	return string(a.Role) + ":" + a.Name
}

func (a Actor) check() error {
	switch a.Role {
	case RoleAdmin, RoleStaff, RoleBilling, RoleReadonly, RoleSystem:
		return nil
	case RoleCustomer:
		if a.CustomerID <= 0 {
			return forbidden("customer actor without customer")
		}
		return nil
	}
	return forbidden("unknown role %q", a.Role)
}

// staff reports whether a may change anything (admin, staff, system).
func (a Actor) staff() bool {
	return a.Role == RoleAdmin || a.Role == RoleStaff || a.Role == RoleSystem
}

// sees reports whether a may see objects of customer id. A customer that
// may not see an object gets ErrNotFound, never ErrForbidden, so it cannot
// probe for the existence of other customers' objects.
func (a Actor) sees(customerID int64) bool {
	return a.Role != RoleCustomer || a.CustomerID == customerID
}

// scopeCustomer narrows a filter's customer to the actor's own.
func (a Actor) scopeCustomer(id int64) int64 {
	if a.Role == RoleCustomer {
		return a.CustomerID
	}
	return id
}

// mayLock reports whether a may create or lift a lock with reason r.
func (a Actor) mayLock(r Reason) bool {
	return a.staff() || (a.Role == RoleBilling && r == ReasonNonPayment)
}
