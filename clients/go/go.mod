module github.com/switchboard-rt/switchboard/clients/go

go 1.24

require (
	github.com/coder/websocket v1.8.15
	go.uber.org/goleak v1.3.0
	google.golang.org/protobuf v1.36.12
)
