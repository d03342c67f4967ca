package dev.switchboard.examples;

import dev.switchboard.client.Client;
import dev.switchboard.client.ClientOptions;
import dev.switchboard.client.JoinOptions;
import dev.switchboard.client.Message;
import dev.switchboard.v1.PublishReply;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

public class Hello {
  public static void main(String[] args) throws Exception {
    String url = args.length > 0 ? args[0] : "ws://127.0.0.1:8080/ws";
    try (Client client = Client.connect(url, ClientOptions.builder().name("alice").build()).get()) {
      CompletableFuture<Message> first = new CompletableFuture<>();
      client.join("lobby", JoinOptions.builder().onMessage(first::complete).build()).get();
      PublishReply ack = client.publish("lobby", "hello, switchboard").get();
      Message msg = first.get(10, TimeUnit.SECONDS);
      System.out.printf("#%d %s: %s%n", ack.getOffset(), msg.getSender(), msg.getText());
    }
  }
}
