// The playground: one message goes to one or two endpoints; each answer streams in as it is generated
// (server-sent events from the same gateway path as /v1/chat/completions).
(function () {
  const form = document.getElementById("playground");
  if (!form) return;
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const gateway = form.dataset.gateway;
  form.addEventListener("submit", (e) => e.preventDefault());
  const $ = (id) => document.getElementById(id);
  const history = { a: [], b: [] };

  function settings() {
    return {
      temperature: parseFloat($("id_temperature").value || "0"),
      max_tokens: parseInt($("id_max_tokens").value || "64", 10),
      system: $("id_system").value.trim(),
    };
  }

  function chosen(side) {
    const option = $("id_" + side).selectedOptions[0];
    return option && option.value ? option : null;
  }

  function bubble(side, role, text) {
    const chat = form.querySelector(`[data-pane=${side}] .chat`);
    const div = document.createElement("div");
    div.className = "msg msg-" + role;
    div.dataset.role = role;
    div.textContent = text;
    chat.appendChild(div);
    chat.scrollTop = chat.scrollHeight;
    return div;
  }

  async function ask(side, message) {
    const option = chosen(side);
    if (!option) return;
    const s = settings();
    history[side].push({ role: "user", content: message });
    bubble(side, "user", message);
    const answer = bubble(side, "assistant", "");
    answer.classList.add("streaming");
    const waiting = setTimeout(() => { if (!answer.textContent) answer.dataset.note = "waiting for the model (it may be loading)…"; }, 800);
    const messages = (s.system ? [{ role: "system", content: s.system }] : []).concat(history[side]);
    let text = "";
    try {
      const response = await fetch(option.dataset.url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify({ messages, temperature: s.temperature, max_tokens: s.max_tokens }),
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({ error: { message: response.statusText } }));
        throw new Error(body.error.message);
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let finish = null, usage = null;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          if (!event.startsWith("data: ")) continue;
          const data = event.slice(6);
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          if (chunk.usage) usage = chunk.usage;
          for (const choice of chunk.choices || []) {
            text += (choice.delta && choice.delta.content) || "";
            if (choice.finish_reason) finish = choice.finish_reason;
          }
          answer.textContent = text;
          delete answer.dataset.note;
        }
      }
      history[side].push({ role: "assistant", content: text });
      answer.dataset.finish = finish || "";
      const meta = document.createElement("div");
      meta.className = "msg-meta";
      meta.textContent = `${option.dataset.name} · ${usage ? usage.completion_tokens + " tokens" : ""}${finish === "length" ? " · stopped at the token limit" : ""}`;
      answer.after(meta);
    } catch (error) {
      answer.classList.add("msg-error");
      answer.textContent = error.message;
      history[side].pop();
    } finally {
      clearTimeout(waiting);
      answer.classList.remove("streaming");
      answer.dataset.done = "true";
    }
  }

  function send() {
    const message = $("id_message").value.trim();
    if (!message) return;
    $("id_message").value = "";
    ask("a", message);
    ask("b", message);
  }

  function snippets() {
    const option = chosen("a");
    if (!option) return;
    const s = settings();
    const messages = (s.system ? [{ role: "system", content: s.system }] : []).concat([{ role: "user", content: "Hello" }]);
    const body = { model: option.dataset.name, messages, temperature: s.temperature, max_tokens: s.max_tokens };
    $("snippet-curl").textContent =
      `curl ${gateway}/chat/completions \\\n  -H "Authorization: Bearer $ATELIER_API_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d '${JSON.stringify(body).replace(/'/g, "'\\''")}'`;
    const py = JSON.stringify(messages, null, 4).replace(/\n/g, "\n    ");
    $("snippet-python").textContent =
      `import os\nfrom openai import OpenAI\n\nclient = OpenAI(base_url="${gateway}", api_key=os.environ["ATELIER_API_KEY"])\n` +
      `stream = client.chat.completions.create(\n    model="${option.dataset.name}",\n    messages=${py},\n    temperature=${s.temperature},\n    max_tokens=${s.max_tokens},\n    stream=True,\n)\nfor chunk in stream:\n    if chunk.choices:\n        print(chunk.choices[0].delta.content or "", end="", flush=True)`;
  }

  $("send").addEventListener("click", send);
  $("id_message").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); } });
  $("clear").addEventListener("click", () => {
    history.a = []; history.b = [];
    form.querySelectorAll(".chat").forEach((c) => { c.textContent = ""; });
  });
  form.addEventListener("input", snippets);
  form.addEventListener("change", snippets);
  snippets();
})();
