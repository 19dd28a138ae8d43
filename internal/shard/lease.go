package shard

import (
	"context"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Labels and annotations of the Leases this package keeps.
const (
	// LabelLease is "member" on a replica's member Lease and "product" on
	// a product's Lease.
	LabelLease = "ota.otafleet.dev/lease"
	// AnnotationProductKey holds a product Lease's productKey, which a
	// Lease name cannot always spell (uppercase, underscores).
	AnnotationProductKey = "ota.otafleet.dev/product-key"
	// AnnotationAppAPI holds, on a member Lease, the URL at which the
	// replica's app API takes requests forwarded by the others.
	AnnotationAppAPI = "ota.otafleet.dev/app-api"
	leaseMember      = "member"
	leaseProduct     = "product"
)

// ProductLeaseName names a product's Lease: the key made a valid name,
// and a hash of the key itself, since two keys that differ only in case
// or in "_" against "-" must not share a Lease.
func ProductLeaseName(productKey string) string {
	h := fnv.New32a()
	h.Write([]byte(productKey))
	return fmt.Sprintf("otafleet-product-%s-%08x", nameSafe(productKey, 32), h.Sum32())
}

// MemberLeaseName names a replica's member Lease.
func MemberLeaseName(identity string) string {
	h := fnv.New32a()
	h.Write([]byte(identity))
	return fmt.Sprintf("otafleet-member-%s-%08x", nameSafe(identity, 40), h.Sum32())
}

var notNameChar = regexp.MustCompile(`[^a-z0-9-]+`)

func nameSafe(s string, n int) string {
	s = notNameChar.ReplaceAllString(strings.ToLower(s), "-")
	return strings.Trim(s[:min(len(s), n)], "-")
}

// leases reads and writes Leases in one namespace, and judges expiry by
// how long a Lease's resourceVersion has stood still as this process saw
// it: renewTime is another replica's clock.
type leases struct {
	c        client.Client
	r        client.Reader
	ns       string
	self     string
	duration time.Duration
	now      func() time.Time
	seen     map[string]observed
}

type observed struct {
	version string
	at      time.Time
}

// live reports whether l is held by a replica that renewed it within the
// lease duration. The Leases this process holds are not judged here: the
// manager knows them (a Lease naming this identity that the manager does
// not hold cannot exist, identities being unique per process).
func (ls *leases) live(l *coordinationv1.Lease) bool {
	holder := ptr.Deref(l.Spec.HolderIdentity, "")
	if holder == "" {
		return false
	}
	o, ok := ls.seen[l.Name]
	if !ok || o.version != l.ResourceVersion {
		// A new record: live for a full duration from now.
		ls.seen[l.Name] = observed{l.ResourceVersion, ls.now()}
		return true
	}
	return ls.now().Sub(o.at) < ls.duration
}

// forgetExcept drops what was observed of Leases no longer listed (deleted
// products, stopped replicas), so that the observations stay bounded.
func (ls *leases) forgetExcept(lists ...[]coordinationv1.Lease) {
	listed := map[string]bool{}
	for _, l := range lists {
		for i := range l {
			listed[l[i].Name] = true
		}
	}
	for name := range ls.seen {
		if !listed[name] {
			delete(ls.seen, name)
		}
	}
}

// list returns the Leases of one kind.
func (ls *leases) list(ctx context.Context, kind string) ([]coordinationv1.Lease, error) {
	var l coordinationv1.LeaseList
	err := ls.r.List(ctx, &l, client.InNamespace(ls.ns), client.MatchingLabels{LabelLease: kind})
	return l.Items, err
}

// acquire takes the Lease name for this replica if it is free or expired.
// It returns the Lease as written, or nil when another replica holds it.
func (ls *leases) acquire(ctx context.Context, name, kind string, annotations map[string]string) (*coordinationv1.Lease, error) {
	l := &coordinationv1.Lease{}
	err := ls.r.Get(ctx, client.ObjectKey{Namespace: ls.ns, Name: name}, l)
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ls.ns, Name: name,
			Labels: map[string]string{LabelLease: kind}, Annotations: annotations}}
		ls.hold(l, true)
		if err := ls.c.Create(ctx, l); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return nil, nil
			}
			return nil, err
		}
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	if ls.live(l) && ptr.Deref(l.Spec.HolderIdentity, "") != ls.self {
		return nil, nil
	}
	ls.hold(l, true)
	if err := ls.c.Update(ctx, l); err != nil {
		if apierrors.IsConflict(err) {
			return nil, nil // another replica took it first
		}
		return nil, err
	}
	return l, nil
}

// renew writes a new renewTime on a Lease this replica holds. A conflict
// means someone else wrote it: it is lost unless it is still ours.
func (ls *leases) renew(ctx context.Context, l *coordinationv1.Lease) (lost bool, err error) {
	ls.hold(l, false)
	err = ls.c.Update(ctx, l)
	if !apierrors.IsConflict(err) {
		return false, err
	}
	if err := ls.r.Get(ctx, client.ObjectKeyFromObject(l), l); err != nil {
		return false, err
	}
	if ptr.Deref(l.Spec.HolderIdentity, "") != ls.self {
		return true, nil
	}
	ls.hold(l, false)
	return false, ls.c.Update(ctx, l)
}

// release gives a Lease up, so that another replica takes it at once.
func (ls *leases) release(ctx context.Context, l *coordinationv1.Lease) error {
	l.Spec.HolderIdentity = ptr.To("")
	err := ls.c.Update(ctx, l)
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // someone else holds it already
	}
	return err
}

func (ls *leases) hold(l *coordinationv1.Lease, acquired bool) {
	now := metav1.NewMicroTime(ls.now())
	if acquired {
		if ptr.Deref(l.Spec.HolderIdentity, "") != ls.self {
			l.Spec.LeaseTransitions = ptr.To(ptr.Deref(l.Spec.LeaseTransitions, 0) + 1)
		}
		l.Spec.AcquireTime = &now
	}
	l.Spec.HolderIdentity = ptr.To(ls.self)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(ls.duration.Seconds()))
	l.Spec.RenewTime = &now
}
