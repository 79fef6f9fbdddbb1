//! `claude-bottle`: parse arguments, start tracing, hand over to the library.

fn main() -> std::process::ExitCode {
    claude_bottle::run()
}
