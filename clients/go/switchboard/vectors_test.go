package switchboard_test

// Golden vectors (tests/vectors): the five rules of
// proto/switchboard/testing/v1/vectors.proto for every vector, with the
// google.golang.org/protobuf binary codec and protojson.

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	chatv1 "github.com/switchboard-rt/switchboard/clients/go/gen/chat/v1"
	testingv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/testing/v1"
	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
	"github.com/switchboard-rt/switchboard/clients/go/internal/testserver"
)

var vectorsDir = filepath.Join(testserver.RepoRoot(), "tests", "vectors")

// vectorTypes resolves the message types vectors may name: the envelopes
// and the example app's payloads.
func vectorTypes() *protoregistry.Types {
	types := &protoregistry.Types{}
	for _, m := range []proto.Message{
		&switchboardv1.ClientFrame{}, &switchboardv1.ServerFrame{},
		&chatv1.ChatMessage{}, &chatv1.TypingEvent{},
	} {
		if err := types.RegisterMessage(m.ProtoReflect().Type()); err != nil {
			panic(err)
		}
	}
	return types
}

func loadManifest(t *testing.T) []*testingv1.Vector {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(vectorsDir, "manifest.json"))
	if err != nil {
		t.Fatalf("the manifest is missing: %v", err)
	}
	manifest := &testingv1.VectorSet{}
	if err := protojson.Unmarshal(data, manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest.GetVectors()) == 0 {
		t.Fatal("tests/vectors/manifest.json lists no vectors")
	}
	return manifest.GetVectors()
}

// jsonValue parses JSON text into a value to compare (numbers kept as
// written).
func jsonValue(t *testing.T, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, data)
	}
	return v
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(vectorsDir, name))
	if err != nil {
		t.Fatalf("vector file missing: %v", err)
	}
	return data
}

func TestVectors(t *testing.T) {
	t.Parallel()
	types := vectorTypes()
	for _, vector := range loadManifest(t) {
		t.Run(vector.GetName(), func(t *testing.T) {
			t.Parallel()
			mt, err := types.FindMessageByName(protoreflect.FullName(vector.GetMessageType()))
			if err != nil {
				t.Fatalf("unknown message type %s", vector.GetMessageType())
			}
			binary := readFile(t, vector.GetName()+".bin")
			expectedJSON := readFile(t, vector.GetName()+".json")
			canonicalPath := filepath.Join(vectorsDir, vector.GetName()+".canonical.bin")
			_, statErr := os.Stat(canonicalPath)
			if (statErr == nil) != vector.GetHasUnknownFields() {
				t.Fatalf("a .canonical.bin exists exactly when has_unknown_fields is set")
			}
			canonical := binary
			if vector.GetHasUnknownFields() {
				canonical = readFile(t, vector.GetName()+".canonical.bin")
			}

			// 1. Decode the binary.
			decoded := mt.New().Interface()
			if err := proto.Unmarshal(binary, decoded); err != nil {
				t.Fatalf("rule 1, decode: %v", err)
			}

			// 2. Print it as proto3 JSON: equal to the .json file as a JSON
			//    value.
			printed, err := protojson.MarshalOptions{Resolver: types}.Marshal(decoded)
			if err != nil {
				t.Fatalf("rule 2, print: %v", err)
			}
			if got, want := jsonValue(t, printed), jsonValue(t, expectedJSON); !reflect.DeepEqual(got, want) {
				t.Errorf("rule 2, printed JSON differs:\n got %s\nwant %s", printed, expectedJSON)
			}

			// 3. Parse the JSON: equal to the decoded message. Unknown fields
			//    exist only in the binary, so compare without them.
			parsed := mt.New().Interface()
			if err := (protojson.UnmarshalOptions{Resolver: types}).Unmarshal(expectedJSON, parsed); err != nil {
				t.Fatalf("rule 3, parse: %v", err)
			}
			knownOnly := proto.Clone(decoded)
			discardUnknown(knownOnly.ProtoReflect())
			if !proto.Equal(parsed, knownOnly) {
				t.Errorf("rule 3, parsed JSON differs from the decoded message:\n got %v\nwant %v", parsed, knownOnly)
			}

			// 4. Re-encode the decoded message: Go keeps unknown fields, so
			//    the bytes must be the original ones.
			reencoded, err := proto.MarshalOptions{Deterministic: true}.Marshal(decoded)
			if err != nil {
				t.Fatalf("rule 4, encode: %v", err)
			}
			if !bytes.Equal(reencoded, binary) {
				t.Errorf("rule 4, re-encoded bytes differ from %s.bin:\n got %x\nwant %x", vector.GetName(), reencoded, binary)
			}

			// 5. Encode the message parsed from JSON: the canonical bytes.
			fromJSON, err := proto.MarshalOptions{Deterministic: true}.Marshal(parsed)
			if err != nil {
				t.Fatalf("rule 5, encode: %v", err)
			}
			if !bytes.Equal(fromJSON, canonical) {
				t.Errorf("rule 5, bytes from JSON differ from the canonical bytes:\n got %x\nwant %x", fromJSON, canonical)
			}
		})
	}
}

// discardUnknown clears the unknown fields of m and every message inside it.
func discardUnknown(m protoreflect.Message) {
	m.SetUnknown(nil)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			list := v.List()
			for i := range list.Len() {
				discardUnknown(list.Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				discardUnknown(mv.Message())
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			discardUnknown(v.Message())
		}
		return true
	})
}

func TestVectorFilesAreAllListed(t *testing.T) {
	t.Parallel()
	names := map[string]bool{}
	for _, v := range loadManifest(t) {
		names[v.GetName()] = true
	}
	entries, err := os.ReadDir(vectorsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if name == "manifest.json" || !(strings.HasSuffix(name, ".bin") || strings.HasSuffix(name, ".json")) {
			continue
		}
		if stem, _, _ := strings.Cut(name, "."); !names[stem] {
			t.Errorf("%s is not in the manifest", name)
		}
	}
}
