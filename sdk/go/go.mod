module rexec.dev/sdk

go 1.19

require github.com/gorilla/websocket v1.5.0

// No module proxy is reachable from the project's machines: the WebSocket library is
// Debian's package golang-github-gorilla-websocket-dev (scripts/test.sh installs it).
replace github.com/gorilla/websocket => /usr/share/gocode/src/github.com/gorilla/websocket
