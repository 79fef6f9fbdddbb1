//! `config.toml` in CLAUDE_BOTTLE_HOME: operator settings that are not per bottle.
