package plugin

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// TestEveryVerbHasAnExample walks the command tree: help without an
// example is where a user gives up.
func TestEveryVerbHasAnExample(t *testing.T) {
	root := NewRootCommand(genericiooptions.NewTestIOStreamsDiscard())
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// TestCompletionOfNames runs cobra's hidden __complete command, as shells
// do, against the API server.
func TestCompletionOfNames(t *testing.T) {
	ctx := testCtx(t)
	ns := newNamespace(t, ctx)
	mustCreate(t, ctx, newBatch(ns, "wifi-1.1.0"), newBatch(ns, "wifi-1.2.0"), newBatch(ns, "mcu-2.2.0"),
		&otav1.Product{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "smart-plug"},
			Spec: otav1.ProductSpec{ProductKey: "a1SmartPlug"}})
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"status", "batch", ""}, []string{"mcu-2.2.0", "wifi-1.1.0", "wifi-1.2.0"}},
		{[]string{"pause", "wifi"}, []string{"wifi-1.1.0", "wifi-1.2.0"}},
		{[]string{"promote", "mcu"}, []string{"mcu-2.2.0"}},
		{[]string{"retry", "x"}, nil},
		{[]string{"cancel", "wifi-1.1.0", ""}, nil}, // one name only
		{[]string{"devices", "--product", "sm"}, []string{"smart-plug"}},
		{[]string{"devices", "--batch", "wifi-1.2"}, []string{"wifi-1.2.0"}},
	} {
		// __complete comes first, and the word to complete last.
		var b strings.Builder
		cmd := NewRootCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &b, ErrOut: io.Discard})
		cmd.SetArgs(append([]string{"__complete", "--kubeconfig", kubeconfig, "-n", ns}, tc.args...))
		err := cmd.ExecuteContext(ctx)
		out := b.String()
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		// The last line is cobra's directive (":4", no file completion).
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if last := lines[len(lines)-1]; last != ":4" {
			t.Errorf("%v: directive %q, want :4 (no file completion)", tc.args, last)
		}
		got := lines[:len(lines)-1]
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%v: completed %v, want %v", tc.args, got, tc.want)
		}
	}
}
