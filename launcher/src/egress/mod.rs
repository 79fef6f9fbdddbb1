//! The egress chain's generated files, backend-neutral and pure: routes.json, allowlist, pipelock YAML.
