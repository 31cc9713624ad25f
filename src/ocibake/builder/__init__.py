"""Build: the spec, project analysis (go.mod, the main package, git), go build, UPX, the build record and the one
orchestration that turns a service into an image."""
