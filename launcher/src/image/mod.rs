//! Image recipes: Dockerfile composition, build contexts assembled in memory, content-hash tags.
