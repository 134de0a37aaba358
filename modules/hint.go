package modules

import "errors"

// HintError is an error with what to do next. Its text is the error's
// alone: the views print the error, then each hint on a line of its own
// ("hint: ..."), and --json carries the hints as a list.
type HintError struct {
	Err  error
	Hint string
}

func (e *HintError) Error() string { return e.Err.Error() }
func (e *HintError) Unwrap() error { return e.Err }

// WithHint adds a hint to err; a nil err stays nil.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &HintError{Err: err, Hint: hint}
}

// Hints returns every hint in err's chain, outermost first.
func Hints(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		for err != nil {
			if h, ok := err.(*HintError); ok {
				out = append(out, h.Hint)
			}
			if joined, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range joined.Unwrap() {
					walk(e)
				}
				return
			}
			err = errors.Unwrap(err)
		}
	}
	walk(err)
	return out
}
