package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImageRunsTheManagerAsNonroot builds an image from a stand-in binary
// and reads the tarball back: the config names /manager and the nonroot
// user, and the layer holds the binary, executable.
func TestImageRunsTheManagerAsNonroot(t *testing.T) {
	dir := t.TempDir()
	bin, ca, out := filepath.Join(dir, "manager"), filepath.Join(dir, "ca.crt"), filepath.Join(dir, "image.tar")
	if err := os.WriteFile(bin, []byte("not really a binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := build(bin, ca, "arm64", "otafleet/manager:test", out); err != nil {
		t.Fatal(err)
	}
	if err := checkImage(out); err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, _ := img.ConfigFile(); cfg.Architecture != "arm64" {
		t.Errorf("architecture %q, want arm64", cfg.Architecture)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers (%v), want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			t.Fatal("no manager in the layer")
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == "manager" {
			if hdr.Mode&0o111 == 0 {
				t.Errorf("manager mode %o is not executable", hdr.Mode)
			}
			return
		}
	}
}

func TestCheckRefusesAMissingTarball(t *testing.T) {
	if err := checkImage(filepath.Join(t.TempDir(), "missing.tar")); err == nil {
		t.Error("a missing tarball passed the check")
	}
}
