package controllers

import (
	"fmt"
	"slices"
	"strings"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// objectOutside says why a namespace may not read an object, or "" when it
// may. Object storage has no namespaces, so without this a team could name
// another team's stored image or device list and read it through the
// operator's credentials. A namespace reads, in the operator's bucket,
// keys under "<namespace>/" (its own objects), plus the "bucket/prefix"
// entries an admin shares with every namespace (--shared-object-prefix).
// The operator's own keys ("_img/", "_up/") start with an underscore,
// which no namespace name does, so no namespace's prefix covers them.
func objectOutside(ns, operatorBucket, bucket, key string, shared []string) string {
	if bucket == "" {
		bucket = operatorBucket
	}
	if slices.Contains(strings.Split(key, "/"), "..") {
		return fmt.Sprintf("object key %q contains a \"..\" segment", key)
	}
	if bucket == operatorBucket && strings.HasPrefix(key, ns+"/") {
		return ""
	}
	full := bucket + "/" + key
	for _, p := range shared {
		if p != "" && strings.HasPrefix(full, p) {
			return ""
		}
	}
	return fmt.Sprintf("object %s is outside this namespace's storage: use a key starting with %q in the operator's "+
		"bucket, or ask an admin to share its prefix", full, ns+"/")
}

// objectRefused is the wait error of a campaign whose device list is
// outside its namespace's storage.
func objectRefused(msg string) error {
	return &waitError{reason: otav1.ReasonObjectOutsideNamespace, message: msg, stalled: true}
}
