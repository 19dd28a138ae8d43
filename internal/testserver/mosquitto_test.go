package testserver

import (
	"context"
	"testing"
)

func TestMosquitto(t *testing.T) {
	ctx := context.Background()
	b, err := StartMosquitto(ctx, MosquittoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, b.URL)
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	again, err := StartMosquitto(ctx, MosquittoOptions{Port: b.Port})
	if err != nil {
		t.Fatalf("restart on port %d: %v", b.Port, err)
	}
	defer again.Stop()
	roundTrip(t, again.URL)
}
