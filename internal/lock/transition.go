package lock

import (
	"fmt"
	"time"
)

// State is where a lock is in its lifecycle.
type State string

const (
	// StateNone is the state before a lock exists (the "from" of creation).
	StateNone            State = ""
	StateWarned          State = "warned"
	StateLocked          State = "locked"
	StateUnlockRequested State = "unlock_requested"
	StateUnlocked        State = "unlocked"
)

// States lists the states a stored lock can be in.
var States = []State{StateWarned, StateLocked, StateUnlockRequested, StateUnlocked}

// Action is what moves a lock from one state to another. Actions double as
// the action names of the audit log.
type Action string

const (
	ActionWarn          Action = "warn"           // create a lock as a warning with a deadline
	ActionLock          Action = "lock"           // create locked, or escalate a warning
	ActionRequestUnlock Action = "request_unlock" // the customer asks for the unlock
	ActionApproveUnlock Action = "approve_unlock" // staff approve the open request
	ActionRejectUnlock  Action = "reject_unlock"  // staff reject it with a note; back to locked
	ActionUnlock        Action = "unlock"         // staff/billing unlock directly (payment, mistake)
	ActionRelock        Action = "relock"         // recurrence within probation re-locks at once
)

// Actions lists every transition action.
var Actions = []Action{ActionWarn, ActionLock, ActionRequestUnlock, ActionApproveUnlock, ActionRejectUnlock, ActionUnlock, ActionRelock}

// transitions is THE transition table: from state → action → to state.
// Nothing else in padlock decides whether a lock may change state.
var transitions = map[State]map[Action]State{
	StateNone: {
		ActionWarn: StateWarned,
		ActionLock: StateLocked,
	},
	StateWarned: {
		ActionLock:   StateLocked,
		ActionUnlock: StateUnlocked,
	},
	StateLocked: {
		ActionRequestUnlock: StateUnlockRequested,
		ActionUnlock:        StateUnlocked,
	},
	StateUnlockRequested: {
		ActionApproveUnlock: StateUnlocked,
		ActionRejectUnlock:  StateLocked,
		ActionUnlock:        StateUnlocked,
	},
	StateUnlocked: {
		ActionRelock: StateLocked, // only within probation, checked by the service
	},
}

// refusals explain the refused (state, action) pairs a user is likely to
// try; anything else gets a generic reason.
var refusals = map[State]map[Action]string{
	StateWarned: {
		ActionRequestUnlock: "the product is only warned, not locked: fix the issue before the deadline, no unlock request is needed",
		ActionApproveUnlock: "there is no unlock request: the lock is only a warning",
		ActionRejectUnlock:  "there is no unlock request: the lock is only a warning",
		ActionRelock:        "the lock was never unlocked; escalate the warning with lock",
	},
	StateLocked: {
		ActionLock:          "the product is already locked",
		ActionApproveUnlock: "there is no open unlock request",
		ActionRejectUnlock:  "there is no open unlock request",
		ActionRelock:        "the product is already locked",
	},
	StateUnlockRequested: {
		ActionRequestUnlock: "an unlock request is already open",
		ActionLock:          "the product is already locked",
		ActionRelock:        "the product is already locked",
	},
	StateUnlocked: {
		ActionLock:          "the lock is closed; a recurrence within probation re-locks it (relock), otherwise create a new lock",
		ActionUnlock:        "the product is already unlocked",
		ActionRequestUnlock: "the product is already unlocked",
		ActionApproveUnlock: "the product is already unlocked",
		ActionRejectUnlock:  "the product is already unlocked",
	},
}

// Transition returns the state action a leads to from state from, or an
// *Error wrapping ErrInvalidTransition that says why not.
func Transition(from State, a Action) (State, error) {
	if to, ok := transitions[from][a]; ok {
		return to, nil
	}
	msg := refusals[from][a]
	if msg == "" {
		if from == StateNone {
			msg = fmt.Sprintf("a new lock can only be created by warn or lock, not %s", a)
		} else {
			msg = fmt.Sprintf("%s is not possible in state %s", a, from)
		}
	}
	return from, &Error{Kind: ErrInvalidTransition, Message: fmt.Sprintf("cannot %s: %s", a, msg)}
}

// Allowed reports whether any action moves a lock from one state to another.
func Allowed(from, to State) bool {
	for _, t := range transitions[from] {
		if t == to {
			return true
		}
	}
	return false
}

// Active reports whether a lock in state s with the given warning deadline
// blocks traffic at time now: locked, unlock requested, or warned with the
// deadline passed.
func Active(s State, warnUntil *time.Time, now time.Time) bool {
	switch s {
	case StateLocked, StateUnlockRequested:
		return true
	case StateWarned:
		return warnUntil != nil && !now.Before(*warnUntil)
	}
	return false
}
