package steer

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// FieldOwner names the plugin in managedFields, so a GitOps tool's diff
// shows who changed spec.paused or spec.cancel.
const FieldOwner = client.FieldOwner("kubectl-ota")

// Finished reports whether a batch reached a phase it never leaves.
func Finished(p otav1.BatchPhase) bool {
	return p == otav1.BatchCompleted || p == otav1.BatchCanceled || p == otav1.BatchAborted
}

// getBatch reads a batch and refuses one that already finished, because a
// patch to it would be accepted and then do nothing.
func getBatch(ctx context.Context, c client.Client, ns, name, verb string) (*otav1.UpgradeBatch, error) {
	ub := &otav1.UpgradeBatch{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ub); err != nil {
		return nil, err
	}
	if Finished(ub.Status.Phase) {
		return nil, fmt.Errorf("upgradebatch %s is %s: nothing to %s", name, ub.Status.Phase, verb)
	}
	return ub, nil
}

// patchSpec sends {"spec": spec} as a JSON merge patch. A raw merge patch
// carries no resourceVersion, so it cannot conflict with the operator's
// status writes, and it touches only the fields named.
func patchSpec(ctx context.Context, c client.Client, ns, name string, spec map[string]any) error {
	data, err := json.Marshal(map[string]any{"spec": spec})
	if err != nil {
		return err
	}
	ub := &otav1.UpgradeBatch{}
	ub.Namespace, ub.Name = ns, name
	return c.Patch(ctx, ub, client.RawPatch(types.MergePatchType, data), FieldOwner)
}

// Pause stops pushes to new devices (spec.paused=true) and returns what
// happened, in the words the plugin prints.
func Pause(ctx context.Context, c client.Client, ns, name string) (string, error) {
	if _, err := getBatch(ctx, c, ns, name, "pause"); err != nil {
		return "", err
	}
	if err := patchSpec(ctx, c, ns, name, map[string]any{"paused": true}); err != nil {
		return "", err
	}
	return fmt.Sprintf("upgradebatch/%s paused", name), nil
}

// Resume removes spec.paused; a canceled batch cannot be resumed.
func Resume(ctx context.Context, c client.Client, ns, name string) (string, error) {
	ub, err := getBatch(ctx, c, ns, name, "resume")
	if err != nil {
		return "", err
	}
	if ub.Spec.Cancel != nil {
		return "", fmt.Errorf("upgradebatch %s is canceled and cannot be resumed", name)
	}
	// null deletes the field, leaving the manifest as short as the user
	// wrote it.
	if err := patchSpec(ctx, c, ns, name, map[string]any{"paused": nil}); err != nil {
		return "", err
	}
	return fmt.Sprintf("upgradebatch/%s resumed", name), nil
}

// Promote ends the pause after the current wave (spec.promotedWaves =
// status.currentWave).
func Promote(ctx context.Context, c client.Client, ns, name string) (string, error) {
	ub, err := getBatch(ctx, c, ns, name, "promote")
	if err != nil {
		return "", err
	}
	wave := ub.Status.CurrentWave
	if wave == 0 {
		return "", fmt.Errorf("upgradebatch %s has not started its first wave yet", name)
	}
	if ub.Spec.PromotedWaves >= wave {
		return fmt.Sprintf("upgradebatch/%s wave %d already promoted", name, wave), nil
	}
	if err := patchSpec(ctx, c, ns, name, map[string]any{"promotedWaves": wave}); err != nil {
		return "", err
	}
	return fmt.Sprintf("upgradebatch/%s promoted past wave %d/%d", name, wave, ub.Status.Waves), nil
}

// Cancel sets spec.cancel with the task states to cancel (all active
// states when empty); a canceled batch cannot be resumed.
func Cancel(ctx context.Context, c client.Client, ns, name string, states []otav1.TaskState) (string, error) {
	cancel := map[string]any{}
	if len(states) > 0 {
		cancel["states"] = states
	}
	if _, err := getBatch(ctx, c, ns, name, "cancel"); err != nil {
		return "", err
	}
	if err := patchSpec(ctx, c, ns, name, map[string]any{"cancel": cancel}); err != nil {
		return "", err
	}
	return fmt.Sprintf("upgradebatch/%s canceled", name), nil
}

// ParseActiveStates checks states to cancel before the API server's CEL
// rule does, so that a typo gets a message naming the allowed values.
func ParseActiveStates(in []string) ([]otav1.TaskState, error) {
	out := make([]otav1.TaskState, 0, len(in))
	seen := map[otav1.TaskState]bool{}
	for _, s := range in {
		st := otav1.TaskState(strings.ToUpper(strings.TrimSpace(s)))
		if !st.Active() {
			return nil, fmt.Errorf("state %q cannot be canceled: use CONFIRM, QUEUED, NOTIFIED or IN_PROGRESS", s)
		}
		if !seen[st] {
			seen[st] = true
			out = append(out, st)
		}
	}
	return out, nil
}

// Pages lists in pages of size and calls fn with each; fn returns false to
// stop early, which saves the remaining round trips.
func Pages(ctx context.Context, c client.Client, list client.ObjectList, size int64, fn func() (bool, error), opts ...client.ListOption) error {
	cont := ""
	for {
		o := append([]client.ListOption{client.Limit(size), client.Continue(cont)}, opts...)
		if err := c.List(ctx, list, o...); err != nil {
			return err
		}
		more, err := fn()
		if err != nil || !more {
			return err
		}
		if cont = list.GetContinue(); cont == "" {
			return nil
		}
	}
}
