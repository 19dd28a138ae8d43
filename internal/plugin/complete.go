package plugin

import (
	"context"
	"strings"

	"github.com/spf13/cobra"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// completeNames completes the first argument with the names of the objects
// of list's kind in the namespace the flags select, for shell completion
// (`kubectl ota completion bash`, and kubectl's plugin completion).
func (o *rootOptions) completeNames(list client.ObjectList) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return o.namesWithPrefix(cmd.Context(), list, toComplete)
	}
}

// completeFlagNames is completeNames for a flag's value.
func (o *rootOptions) completeFlagNames(list client.ObjectList) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return o.namesWithPrefix(cmd.Context(), list, toComplete)
	}
}

func (o *rootOptions) namesWithPrefix(ctx context.Context, list client.ObjectList, prefix string) ([]string, cobra.ShellCompDirective) {
	if ctx == nil {
		ctx = context.Background()
	}
	c, ns, err := o.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	l := list.DeepCopyObject().(client.ObjectList)
	if err := c.List(ctx, l, client.InNamespace(ns)); err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var names []string
	_ = apimeta.EachListItem(l, func(obj runtime.Object) error {
		if name := obj.(client.Object).GetName(); strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
		return nil
	})
	return names, cobra.ShellCompDirectiveNoFileComp
}
