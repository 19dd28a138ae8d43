package storage

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestGetRange(t *testing.T) {
	st, bucket := newStore(t, "")
	image, err := io.ReadAll(imageReader(7, 100000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(t.Context(), bucket, "fw/a.bin", bytes.NewReader(image), int64(len(image)), ""); err != nil {
		t.Fatal(err)
	}
	size := int64(len(image))
	tests := []struct {
		name           string
		offset, length int64
		want           []byte
	}{
		{"whole", 0, -1, image},
		{"from an offset to the end", 99000, -1, image[99000:]},
		{"first byte", 0, 1, image[:1]},
		{"middle", 500, 1000, image[500:1500]},
		{"past the end clamped", size - 10, 1000, image[size-10:]},
		{"empty", 10, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, info, err := st.GetRange(t.Context(), bucket, "fw/a.bin", tt.offset, tt.length)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("read %d bytes that differ from the %d wanted", len(got), len(tt.want))
			}
			if info.Size != size || info.Key != "fw/a.bin" || info.Bucket != bucket {
				t.Errorf("info %+v, want the whole object's size %d", info, size)
			}
		})
	}
}

func TestGetRangeRefusals(t *testing.T) {
	st, bucket := newStore(t, "")
	if _, err := st.Put(t.Context(), bucket, "fw/a.bin", bytes.NewReader(make([]byte, 1000)), 1000, ""); err != nil {
		t.Fatal(err)
	}
	_, info, err := st.GetRange(t.Context(), bucket, "fw/a.bin", 1000, -1)
	if !errors.Is(err, ErrRangeNotSatisfiable) || info.Size != 1000 {
		t.Errorf("offset at the end: %v with size %d, want ErrRangeNotSatisfiable with size 1000", err, info.Size)
	}
	if _, _, err := st.GetRange(t.Context(), bucket, "fw/missing.bin", 0, -1); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing object: %v, want ErrNotFound", err)
	}
	if _, _, err := st.GetRange(t.Context(), bucket, "fw/missing.bin", 5, 10); !errors.Is(err, ErrNotFound) {
		t.Errorf("range of a missing object: %v, want ErrNotFound", err)
	}
}
