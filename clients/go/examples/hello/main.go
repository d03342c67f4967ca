package main

import (
	"context"
	"flag"
	"fmt"
	"log"

	"github.com/switchboard-rt/switchboard/clients/go/switchboard"
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080/ws", "the server's WebSocket URL")
	flag.Parse()
	ctx := context.Background()

	client, err := switchboard.Dial(ctx, *url, switchboard.WithName("alice"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	lobby, err := client.Join(ctx, "lobby", nil)
	if err != nil {
		log.Fatal(err)
	}
	ack, err := client.Publish(ctx, "lobby", "hello, switchboard")
	if err != nil {
		log.Fatal(err)
	}
	msg := <-lobby.Messages()
	fmt.Printf("#%d %s: %s\n", ack.Offset, msg.Sender, msg.Text())
}
