//! The MCP server over stdio, driven with raw JSON-RPC lines like a client would.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::proposals::Bottle;

#[test]
fn mcp_lists_the_four_tools_and_files_an_egress_request() {
    let b = Bottle::new();
    b.start_supervise();
    let mut child = Command::new(env!("CARGO_BIN_EXE_claude-bottle-shim"))
        .arg("--socket")
        .arg(&b.shim_socket)
        .arg("--supervise-socket")
        .arg(&b.supervise_socket)
        .arg("mcp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .env("CLAUDE_BOTTLE_LOG", "warn")
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut send = |v: Value| {
        let mut line = serde_json::to_vec(&v).unwrap();
        line.push(b'\n');
        stdin.write_all(&line).unwrap();
        stdin.flush().unwrap();
    };
    let mut recv = || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        serde_json::from_str::<Value>(&line).unwrap()
    };

    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"}}}),
    );
    let init = recv();
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));

    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    let list = recv();
    let mut names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "current_config",
            "proposal_status",
            "request_capability",
            "request_egress"
        ]
    );

    send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "request_egress", "arguments": {"host": "packages.example.org", "reason": "pip"}}}),
    );
    let call = recv();
    let text = call["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("filed"), "{call}");
    assert_eq!(b.proposals().len(), 1);

    send(
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "request_egress", "arguments": {"host": "bad host", "reason": "x"}}}),
    );
    let bad = recv();
    assert_eq!(bad["result"]["isError"], true, "{bad}");

    let _ = child.kill();
    let _ = child.wait();
}
