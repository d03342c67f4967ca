//! Replays every scenario in `tests/scenarios/` against a fresh in-process
//! server each, with the reference runner.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use switchboard::config::Config;
use switchboard_conformance::proto::testing::Scenario;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

fn scenario_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

/// Starts a server on 127.0.0.1:0, runs `body` against its WebSocket URL,
/// then shuts the server down and waits for it.
async fn with_server<F, Fut>(body: F) -> Fut::Output
where
    F: FnOnce(String) -> Fut,
    Fut: Future,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let mut config = Config::default();
    config.limits.close_timeout = Duration::from_millis(300);
    config.shutdown_timeout = Duration::from_secs(2);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(switchboard::server::run(listener, config, async move {
        let _ = stopped.await;
    }));
    let output = body(url).await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server shuts down")
        .expect("server task")
        .expect("server runs cleanly");
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_passes() {
    let files = scenario_files();
    assert!(
        files.len() >= 10,
        "expected the scenario suite, found {files:?}"
    );
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let scenario: Scenario = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not a Scenario: {e}", file.display()));
        assert_eq!(
            Some(scenario.name.as_str()),
            file.file_stem().and_then(|s| s.to_str()),
            "a scenario's name is its file stem"
        );
        assert!(!scenario.steps.is_empty(), "{}: no steps", scenario.name);
        let result = with_server(|url| async move {
            switchboard_conformance::runner::run(&url, &scenario).await
        })
        .await;
        match result {
            Ok(()) => println!("scenario {}: passed", file.display()),
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "failed scenarios:\n{}",
        failures.join("\n")
    );
}

/// The runner must be able to fail: a scenario whose expectation is wrong
/// is reported at the right step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_expectation_fails_at_its_step() {
    let scenario: Scenario = serde_json::from_value(serde_json::json!({
        "name": "wrong",
        "steps": [
            {"client": "alice", "connect": {"name": "alice"}},
            {"client": "alice", "join": {"room": "r"}},
            {"client": "alice", "publish": {"room": "r", "payload": {"text": "hi"}, "expectOffset": "1"}},
            {"client": "alice", "expectPush": {"message": {"room": "r", "payload": {"text": "bye"}}}}
        ]
    }))
    .unwrap();
    let err =
        with_server(
            |url| async move { switchboard_conformance::runner::run(&url, &scenario).await },
        )
        .await
        .expect_err("the expectation is wrong");
    assert_eq!(err.step, 3, "{err}");
    assert!(err.message.contains("payload.text"), "{err}");
}
