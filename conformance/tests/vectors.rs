//! The committed golden vectors are exactly what the Rust types produce, and
//! they satisfy every rule of `vectors.proto`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use switchboard_conformance::vectors;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

#[test]
fn committed_vectors_are_current() {
    let expected = vectors::files(&vectors::all());
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let wanted: BTreeSet<String> = expected.iter().map(|(name, _)| name.clone()).collect();
    assert_eq!(
        on_disk, wanted,
        "tests/vectors is stale: run scripts/generate.sh"
    );
    for (name, contents) in expected {
        let actual = std::fs::read(dir().join(&name)).unwrap();
        assert!(
            actual == contents,
            "tests/vectors/{name} is stale: run scripts/generate.sh"
        );
    }
}

#[test]
fn committed_vectors_hold() {
    let checked = vectors::check(&dir()).unwrap();
    assert_eq!(checked, vectors::all().len());
}

#[test]
fn vectors_cover_every_command_reply_and_push() {
    use prost::Message as _;
    use switchboard::proto::{ClientFrame, ServerFrame};
    // `Publish(PublishRequest { .. })` -> "Publish".
    let variant = |debug: String| debug.split('(').next().unwrap_or_default().to_owned();
    let mut commands = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for case in vectors::all() {
        match case.message_type {
            vectors::MessageType::ClientFrame => {
                if let Some(c) = ClientFrame::decode(case.binary.as_slice()).unwrap().command {
                    commands.insert(variant(format!("{c:?}")));
                }
            }
            vectors::MessageType::ServerFrame => {
                if let Some(k) = ServerFrame::decode(case.binary.as_slice()).unwrap().kind {
                    kinds.insert(variant(format!("{k:?}")));
                }
            }
            _ => {}
        }
    }
    // ClientFrame has 9 commands; ServerFrame has 18 kinds.
    assert_eq!(commands.len(), 9, "a command has no vector");
    assert_eq!(kinds.len(), 18, "a reply or push has no vector: {kinds:?}");
}
