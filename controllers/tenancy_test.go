package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// teamClient is a client acting as user, bound by a Role to the otafleet
// resources of ns only: what docs/tenancy.md asks a team to be given.
func teamClient(t *testing.T, ns, user string) client.Client {
	t.Helper()
	ctx := t.Context()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "otafleet-team"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{otav1.GroupVersion.Group}, Verbs: []string{"*"},
			Resources: []string{"products", "firmwares", "verificationruns", "upgradebatches"}},
		{APIGroups: []string{otav1.GroupVersion.Group}, Verbs: []string{"get", "list", "watch"},
			Resources: []string{"deviceslices", "upgradeslices"}},
	}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "otafleet-team"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}}}
	for _, o := range []client.Object{role, binding} {
		if err := suite.k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	cfg := rest.CopyConfig(suite.cp.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: suite.cp.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func productCondition(t *testing.T, c client.Client, ns, name, typ string) (*otav1.Product, *metav1.Condition) {
	t.Helper()
	p := &otav1.Product{}
	if err := c.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, p); err != nil {
		t.Fatal(err)
	}
	return p, apimeta.FindStatusCondition(p.Status.Conditions, typ)
}

// waitTeamProduct waits, reading as the team, until the Product's
// condition has the reason at the Product's current generation.
func waitTeamProduct(t *testing.T, c client.Client, ns, name, typ, reason string) *metav1.Condition {
	t.Helper()
	var cond *metav1.Condition
	eventually(t, 30*time.Second, func() (bool, string) {
		p, c := productCondition(t, c, ns, name, typ)
		cond = c
		if c == nil {
			return false, fmt.Sprintf("no %s condition", typ)
		}
		return c.Reason == reason && p.Status.ObservedGeneration == p.Generation, c.Reason + ": " + c.Message
	})
	return cond
}

func TestProductKeyBelongsToFirstNamespace(t *testing.T) {
	nsA, nsB := newNamespace(t, "tenant-a-"), newNamespace(t, "tenant-b-")
	teamA, teamB := teamClient(t, nsA, "team-a"), teamClient(t, nsB, "team-b")
	key := "shared-" + nsA[len(nsA)-5:]
	ctx := t.Context()
	mk := func(ns, name string) *otav1.Product {
		return &otav1.Product{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: otav1.ProductSpec{ProductKey: key}}
	}
	lamp := mk(nsA, "lamp")
	if err := teamA.Create(ctx, lamp); err != nil {
		t.Fatal(err)
	}
	waitTeamProduct(t, teamA, nsA, "lamp", otav1.ConditionReady, otav1.ReasonSucceeded)
	if err := teamB.Create(ctx, mk(nsB, "hijack")); err != nil {
		t.Fatal(err)
	}
	c := waitTeamProduct(t, teamB, nsB, "hijack", otav1.ConditionStalled, otav1.ReasonDuplicateProduct)
	if strings.Contains(c.Message, nsA) || strings.Contains(c.Message, "lamp") {
		t.Errorf("refusal tells team B about team A: %q", c.Message)
	}
	// Team B cannot look the claim up: it is cluster-scoped.
	err := teamB.Get(ctx, types.NamespacedName{Name: otav1.ClaimName(key)}, &otav1.ProductKeyClaim{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("team B reading the claim: %v, want Forbidden", err)
	}

	// Team A deletes its Product: the key stays with namespace A.
	if err := teamA.Delete(ctx, lamp); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		err := teamA.Get(ctx, client.ObjectKeyFromObject(lamp), &otav1.Product{})
		return apierrors.IsNotFound(err), fmt.Sprintf("lamp still there: %v", err)
	})
	// A new generation makes B's Product be decided again after A left.
	p, _ := productCondition(t, teamB, nsB, "hijack", otav1.ConditionStalled)
	p.Spec.DisplayName = "after A left"
	if err := teamB.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	waitTeamProduct(t, teamB, nsB, "hijack", otav1.ConditionStalled, otav1.ReasonDuplicateProduct)

	// Team A creates its Product again and gets its key back.
	if err := teamA.Create(ctx, mk(nsA, "lamp")); err != nil {
		t.Fatal(err)
	}
	waitTeamProduct(t, teamA, nsA, "lamp", otav1.ConditionReady, otav1.ReasonSucceeded)

	// Releasing a key is an admin's act: the claim is deleted, and the
	// next claimant is whoever the oldest live Product with the key is.
	claim := &otav1.ProductKeyClaim{ObjectMeta: metav1.ObjectMeta{Name: otav1.ClaimName(key)}}
	if err := teamA.Delete(ctx, claim); !apierrors.IsForbidden(err) {
		t.Errorf("team A deleting the claim: %v, want Forbidden", err)
	}
}

func TestObjectSourceConfinedToNamespace(t *testing.T) {
	nsA, nsB := newNamespace(t, "objsrc-a-"), newNamespace(t, "objsrc-b-")
	teamB := teamClient(t, nsB, "team-b-objects")
	createProduct(t, nsA, "prod", nsA, "mcu")
	createProduct(t, nsB, "prod", nsB, "mcu")
	im := image{seed: 31, size: 1 << 16}
	theirs := putSourceObject(t, nsA+"/secret.bin", im)
	mine := putSourceObject(t, nsB+"/mine.bin", im)
	ctx := t.Context()
	for name, src := range map[string]otav1.FirmwareSource{"theirs": theirs, "mine": mine} {
		fw := &otav1.Firmware{ObjectMeta: metav1.ObjectMeta{Namespace: nsB, Name: name},
			Spec: otav1.FirmwareSpec{Product: "prod", Module: "mcu", Version: "2.0.0", Source: src}}
		if err := teamB.Create(ctx, fw); err != nil {
			t.Fatal(err)
		}
	}
	fw := waitFirmwareCondition(t, nsB, "theirs", otav1.ConditionStalled, metav1.ConditionTrue, otav1.ReasonObjectOutsideNamespace)
	if fw.Status.Artifact != nil {
		t.Errorf("another namespace's object was stored: %+v", fw.Status.Artifact)
	}
	waitFirmwareReady(t, nsB, "mine")
}

func TestObjectOutside(t *testing.T) {
	shared := []string{"builds/common/"}
	for _, tc := range []struct {
		bucket, key string
		ok          bool
	}{
		{"", "team-a/fw.bin", true},
		{"ops", "team-a/lists/beta.txt", true},
		{"", "_img/0b7c.bin", false}, // the operator's own images
		{"", "_up/team-a/fw/uid", false},
		{"", "team-b/fw.bin", false},
		{"", "firmware/team-a/fw/uid/image.bin", false},
		{"", "team-a/../team-b/fw.bin", false},
		{"other", "team-a/fw.bin", false},
		{"builds", "common/fw.bin", true},
		{"builds", "private/fw.bin", false},
	} {
		msg := objectOutside("team-a", "ops", tc.bucket, tc.key, shared)
		if (msg == "") != tc.ok {
			t.Errorf("%s/%s: allowed %v, want %v (%s)", tc.bucket, tc.key, msg == "", tc.ok, msg)
		}
	}
}
