package plugin

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// newStatusRunCommand shows a VerificationRun: a run has at most ten
// devices, so the view lists each one instead of counting states.
func newStatusRunCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "run NAME",
		Example: "  kubectl ota status run wifi-1.1.0-verify",
		Aliases: []string{"vr", "verificationrun"},
		Short:   "Show a VerificationRun: phase and each test device's state, step and reason",
		Args:    cobra.ExactArgs(1),
		RunE: o.runE(func(ctx context.Context, c client.Client, ns string, args []string) error {
			vr := &otav1.VerificationRun{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: args[0]}, vr); err != nil {
				return err
			}
			renderRun(o.streams.Out, vr, time.Now())
			return nil
		}),
	}
}

// renderRun writes the human view of a run; pure, like renderBatch.
func renderRun(w io.Writer, vr *otav1.VerificationRun, now time.Time) {
	s := vr.Status
	phase := string(s.Phase)
	if phase == "" {
		phase = "Pending (not reconciled yet)"
	}
	fmt.Fprintf(w, "Name:       %s\n", vr.Name)
	fmt.Fprintf(w, "Namespace:  %s\n", vr.Namespace)
	fmt.Fprintf(w, "Firmware:   %s\n", vr.Spec.Firmware)
	fmt.Fprintf(w, "Phase:      %s\n", phase)
	if s.StartTime != nil {
		fmt.Fprintf(w, "Started:    %s (%s ago)\n", s.StartTime.UTC().Format(time.RFC3339), duration.HumanDuration(now.Sub(s.StartTime.Time)))
	}
	if s.CompletionTime != nil {
		fmt.Fprintf(w, "Finished:   %s\n", s.CompletionTime.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "Progress:   %d/%d succeeded\n\n", s.Counts.Succeeded, len(vr.Spec.Devices))
	t := newStreamTable(w, "DEVICE", "STATE", "STEP", "FROM", "REASON")
	seen := map[string]bool{}
	for _, d := range s.Devices {
		seen[d.Name] = true
		t.Row(d.Name, string(d.State), strconv.Itoa(int(d.Step)), orDash(d.FromVersion), reasonCell(otav1.DeviceTask{Reason: d.Reason, Message: d.Message}))
	}
	for _, name := range vr.Spec.Devices {
		if !seen[name] {
			t.Row(name, "-", "-", "-", "not selected yet")
		}
	}
	_ = t.Flush()
	if c := apimeta.FindStatusCondition(s.Conditions, otav1.ConditionReady); c != nil && c.Message != "" {
		fmt.Fprintf(w, "\n%s\n", conditionLine(c.Type, string(c.Status), c.Reason, c.Message))
	}
}

// conditionLine shows a condition with its status first, so that a reason
// such as Progressing is never read as the condition's value.
func conditionLine(typ, status, reason, msg string) string {
	return fmt.Sprintf("%s=%s  %s: %s", typ, status, reason, msg)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
