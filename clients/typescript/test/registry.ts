/** Every generated type, resolvable by full name (vectors and scenarios). */
import { createRegistry } from "@bufbuild/protobuf";
import { file_chat_v1_chat } from "../src/gen/chat/v1/chat_pb.js";
import { file_switchboard_testing_v1_scenario } from "../src/gen/switchboard/testing/v1/scenario_pb.js";
import { file_switchboard_testing_v1_vectors } from "../src/gen/switchboard/testing/v1/vectors_pb.js";
import { file_switchboard_v1_close_codes } from "../src/gen/switchboard/v1/close_codes_pb.js";
import { file_switchboard_v1_commands } from "../src/gen/switchboard/v1/commands_pb.js";
import { file_switchboard_v1_envelope } from "../src/gen/switchboard/v1/envelope_pb.js";
import { file_switchboard_v1_errors } from "../src/gen/switchboard/v1/errors_pb.js";
import { file_switchboard_v1_pushes } from "../src/gen/switchboard/v1/pushes_pb.js";
import { file_switchboard_v1_types } from "../src/gen/switchboard/v1/types_pb.js";

export const allTypes = createRegistry(
  file_switchboard_v1_close_codes,
  file_switchboard_v1_commands,
  file_switchboard_v1_envelope,
  file_switchboard_v1_errors,
  file_switchboard_v1_pushes,
  file_switchboard_v1_types,
  file_chat_v1_chat,
  file_switchboard_testing_v1_scenario,
  file_switchboard_testing_v1_vectors,
);
