package dev.switchboard.client;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A backend calling a development-mode server's HTTP API ({@code /api/v1}, open without a key).
 * Every call is bounded by {@link Await#WAIT} and must answer 200.
 */
final class HttpApi {
  private static final Pattern OFFSET = Pattern.compile("\"offset\":\"(\\d+)\"");

  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Await.WAIT).build();
  private final String root;
  private final String base;

  HttpApi(TestServer server) {
    this.root = "http://" + server.host + ":" + server.port;
    this.base = root + "/api/v1";
  }

  /**
   * Polls {@code GET /readyz} until it answers 200, within {@link Await#WAIT} (a node answers 503
   * while its broker does not answer).
   */
  void awaitReady() {
    Await.until("the server is ready", () -> {
      HttpRequest request =
          HttpRequest.newBuilder(URI.create(root + "/readyz")).timeout(Await.WAIT).build();
      try {
        return http.send(request, HttpResponse.BodyHandlers.discarding()).statusCode() == 200;
      } catch (IOException e) {
        return false;
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AssertionError(e);
      }
    });
  }

  /** Subscribes every connection of {@code user} to {@code room}. */
  void subscribe(String user, String room) {
    call("PUT", "/users/" + user + "/rooms/" + room, "{}");
  }

  /** Unsubscribes every connection of {@code user} from {@code room}. */
  void unsubscribe(String user, String room) {
    call("DELETE", "/users/" + user + "/rooms/" + room, null);
  }

  /** Publishes text to {@code room} as the backend; returns the message's offset. */
  long publish(String room, String text) {
    String body = call("POST", "/rooms/" + room + "/messages",
        "{\"payload\":{\"text\":\"" + text + "\"}}");
    Matcher m = OFFSET.matcher(body);
    if (!m.find()) {
      throw new AssertionError("no offset in the publish reply " + body);
    }
    return Long.parseLong(m.group(1));
  }

  /** The JSON of {@code GET /rooms/{room}/presence}. */
  String presence(String room) {
    return call("GET", "/rooms/" + room + "/presence", null);
  }

  private String call(String method, String path, String json) {
    HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(base + path))
        .timeout(Await.WAIT)
        .header("Content-Type", "application/json")
        .method(method, json == null
            ? HttpRequest.BodyPublishers.noBody()
            : HttpRequest.BodyPublishers.ofString(json));
    HttpResponse<String> response;
    try {
      response = http.send(request.build(), HttpResponse.BodyHandlers.ofString());
    } catch (IOException e) {
      throw new AssertionError(method + " " + path + " failed", e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
    assertEquals(200, response.statusCode(),
        () -> method + " " + path + " answered " + response.statusCode() + ": " + response.body());
    return response.body();
  }
}
