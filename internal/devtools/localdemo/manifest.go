package localdemo

import (
	"fmt"
	"os"

	"github.com/certbackup/certbackup/internal/build/manifest"
)

// boundParams returns the inputs that manifest.yaml binds to action, with every
// $VARIABLE replaced from vars and an unset one replaced by "", as wskdeploy does at
// deploy time. Values stay strings, as they reach the deployed action. Reading the
// manifest rather than repeating its list here means the demo runs the action with
// exactly the parameters a deployment gives it, including any added later.
//
// The manifest is read by internal/build/manifest, a line-based reader for our own manifest
// (shared with buildzip), not a YAML parser: an input with a nested value is refused
// rather than guessed at.
func boundParams(doc []byte, action string, vars map[string]string) (map[string]any, error) {
	m, err := manifest.Parse(doc)
	if err != nil {
		return nil, err
	}
	a, ok := m.Action(action)
	if !ok {
		return nil, fmt.Errorf("action %q not found under any actions: block", action)
	}
	if a.InputsLine == 0 {
		return nil, fmt.Errorf("action %q has no inputs: block", action)
	}
	if a.InputsErr != nil {
		return nil, a.InputsErr
	}
	params := make(map[string]any, len(a.Inputs))
	for _, in := range a.Inputs {
		params[in.Key] = os.Expand(in.Value, func(name string) string { return vars[name] })
	}
	return params, nil
}
