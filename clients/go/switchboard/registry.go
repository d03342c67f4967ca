package switchboard

import (
	"fmt"
	"log/slog"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
)

// TypeRegistry maps protobuf full names ("chat.v1.ChatMessage") to generated
// message types. Received payloads whose type_name is registered are decoded
// into a value of that type; any other payload is left as bytes. It is safe
// for concurrent use.
type TypeRegistry struct {
	mu     sync.RWMutex
	byName map[protoreflect.FullName]protoreflect.MessageType
}

// NewTypeRegistry returns a registry holding the types of the given messages
// (any value of each type, e.g. (*chatv1.ChatMessage)(nil)).
func NewTypeRegistry(types ...proto.Message) (*TypeRegistry, error) {
	r := &TypeRegistry{byName: make(map[protoreflect.FullName]protoreflect.MessageType)}
	for _, m := range types {
		if err := r.Register(m); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Register adds the type of m (any value of it, nil pointers included).
// Registering the same type again is a no-op; another type with the same
// full name is an error.
func (r *TypeRegistry) Register(m proto.Message) error {
	if m == nil {
		return fmt.Errorf("switchboard: cannot register a nil message")
	}
	mt := m.ProtoReflect().Type()
	name := mt.Descriptor().FullName()
	r.mu.Lock()
	defer r.mu.Unlock()
	if known, ok := r.byName[name]; ok && known != mt {
		return fmt.Errorf("switchboard: another type is already registered as %s", name)
	}
	r.byName[name] = mt
	return nil
}

// Lookup returns the type registered as name.
func (r *TypeRegistry) Lookup(name string) (protoreflect.MessageType, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	mt, ok := r.byName[protoreflect.FullName(name)]
	return mt, ok
}

// Decode returns the payload's typed value, or nil when its type is not
// registered, it has none, or its bytes do not decode as that type (which is
// logged, never an error).
func (r *TypeRegistry) Decode(p *switchboardv1.Payload) proto.Message {
	return r.decode(p, nil)
}

func (r *TypeRegistry) decode(p *switchboardv1.Payload, log *slog.Logger) proto.Message {
	if p.GetTypeName() == "" {
		return nil
	}
	mt, ok := r.Lookup(p.GetTypeName())
	if !ok {
		return nil
	}
	value := mt.New().Interface()
	if err := proto.Unmarshal(p.GetData(), value); err != nil {
		if log != nil {
			log.Warn("switchboard: payload does not decode as its type; kept as bytes",
				"type", p.GetTypeName(), "error", err)
		}
		return nil
	}
	return value
}
