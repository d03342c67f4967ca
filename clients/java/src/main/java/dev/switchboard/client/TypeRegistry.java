package dev.switchboard.client;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import dev.switchboard.v1.Payload;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The application's payload types: generated protobuf classes keyed by their full name (e.g.
 * "chat.v1.ChatMessage"). Received payloads whose {@code type_name} is registered are decoded
 * into an instance; any other payload is left as bytes. Immutable.
 */
public final class TypeRegistry {
  private static final Logger LOG = Logger.getLogger("dev.switchboard.client");

  /** An empty registry: every typed payload stays bytes plus type name. */
  public static final TypeRegistry EMPTY = new TypeRegistry(Collections.emptyMap());

  /** Default instance of each registered type, by full name. */
  private final Map<String, Message> byName;

  private TypeRegistry(Map<String, Message> byName) {
    this.byName = byName;
  }

  /**
   * A registry of the given types.
   *
   * @param types any instance of each generated class, e.g. {@code
   *     ChatMessage.getDefaultInstance()}
   * @return the registry
   * @throws IllegalArgumentException if two different classes share a full name
   */
  public static TypeRegistry of(Message... types) {
    return EMPTY.with(types);
  }

  /**
   * This registry plus more types.
   *
   * @param types any instance of each generated class
   * @return a new registry
   * @throws IllegalArgumentException if two different classes share a full name
   */
  public TypeRegistry with(Message... types) {
    Map<String, Message> merged = new LinkedHashMap<>(byName);
    for (Message type : types) {
      Message prototype = type.getDefaultInstanceForType();
      String name = prototype.getDescriptorForType().getFullName();
      Message known = merged.get(name);
      if (known != null && known.getClass() != prototype.getClass()) {
        throw new IllegalArgumentException("another class is already registered as " + name);
      }
      merged.put(name, prototype);
    }
    return new TypeRegistry(Collections.unmodifiableMap(merged));
  }

  /**
   * Whether a type name is registered.
   *
   * @param typeName a full protobuf name
   * @return true when payloads of that type are decoded
   */
  public boolean contains(String typeName) {
    return byName.containsKey(typeName);
  }

  /**
   * The default instance registered under a name.
   *
   * @param typeName a full protobuf name
   * @return the default instance, or null when not registered
   */
  public Message get(String typeName) {
    return byName.get(typeName);
  }

  /**
   * The registered type names.
   *
   * @return full names, in registration order
   */
  public java.util.Set<String> typeNames() {
    return byName.keySet();
  }

  /**
   * A payload's typed value.
   *
   * @param payload a received payload
   * @return the decoded value, or null when its type is not registered (or its bytes do not
   *     decode as that type, which is logged)
   */
  public Message decode(Payload payload) {
    String typeName = payload.getTypeName();
    if (typeName.isEmpty()) {
      return null;
    }
    Message prototype = byName.get(typeName);
    if (prototype == null) {
      return null;
    }
    ByteString data = payload.getData();
    try {
      return prototype.getParserForType().parseFrom(data);
    } catch (InvalidProtocolBufferException e) {
      LOG.log(Level.WARNING, "payload of type {0} does not decode; kept as bytes", typeName);
      return null;
    }
  }
}
