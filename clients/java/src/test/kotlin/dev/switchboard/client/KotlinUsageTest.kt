package dev.switchboard.client

import com.example.chat.v1.ChatMessage
import com.example.chat.v1.Format
import com.example.chat.v1.chatMessage
import com.example.chat.v1.mention
import dev.switchboard.v1.payload
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit.SECONDS
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test

/** The SDK from Kotlin: the generated DSL builds payloads, getters read as properties. */
class KotlinUsageTest {
  private lateinit var server: TestServer

  @BeforeEach
  fun startServer() {
    server = TestServer.start()
  }

  @AfterEach
  fun stopServer() {
    server.close()
  }

  @Test
  fun typedMessagesBuiltWithTheKotlinDslRoundTrip() {
    val options = ClientOptions.builder()
      .name("kotlin")
      .types(ChatMessage.getDefaultInstance())
      .build()
    Client.connect(server.url, options).get(10, SECONDS).use { client ->
      val received = LinkedBlockingQueue<Message>(100)
      val listener = object : SubscriptionListener {
        override fun onMessage(message: Message) {
          received.add(message)
        }
      }
      client.join("kt", JoinOptions.builder().listener(listener).build()).get(10, SECONDS)

      val hello = chatMessage {
        text = "hi @bob"
        format = Format.FORMAT_MARKDOWN
        mentions += mention {
          user = "bob"
          start = 3
          length = 4
        }
        tags += "kotlin"
        tags += listOf("dsl", "test")
      }
      val ack = client.publish("kt", hello).get(10, SECONDS)
      val typed = checkNotNull(received.poll(10, SECONDS)) { "no message within 10 s" }
      assertEquals(hello, typed.valueAs(ChatMessage::class.java))
      assertEquals(ack.offset, typed.offset)
      assertEquals("chat.v1.ChatMessage", typed.typeName)

      client.publish("kt", Content.payload(payload { text = "plain" })).get(10, SECONDS)
      assertEquals("plain", checkNotNull(received.poll(10, SECONDS)) { "no message within 10 s" }.text)
    }
  }
}
