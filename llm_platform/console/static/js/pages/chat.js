// The playground: a model the tenant may use, a system prompt and sampling, the answer streamed as it
// is generated (and stoppable), stored conversations to resume, and per answer its usage, time to first
// token, total latency, cache hit and citations. A model's output is shown as text, never as markup.
// The conversations list shows the most recently active first, a page at a time with the API's cursor.
import { ApiError, api } from "../api.js";
import { busy, empty, errorBox, h, when } from "../ui.js";

const PAGE = 20; // conversations a page of the list holds; "Older conversations" loads the next

function message(role, text) {
  const body = h("p", { class: "body" }, text);
  const article = h("article", { class: `message ${role}`, "data-role": role }, body);
  return { article, body };
}

function stats(done, timing, cache) {
  const parts = [];
  if (done) {
    parts.push(`${done.usage.prompt_tokens} prompt + ${done.usage.completion_tokens} completion tokens`);
    parts.push(`model ${done.model}`);
    parts.push(`finish: ${done.finish_reason}`);
  }
  if (timing.firstMs !== null) parts.push(`first token ${timing.firstMs} ms`);
  parts.push(`total ${timing.totalMs} ms`);
  if (cache) parts.push(cache === "hit" ? "cache hit" : "cache miss");
  return h("p", { class: "stats muted" }, parts.join(" · "));
}

function citations(list) {
  if (!list || list.length === 0) return null;
  return h("ol", { class: "citations" },
    list.map((c) => h("li", {}, `${c.title} (passage ${c.chunk_index + 1}, score ${c.score.toFixed(2)})`)));
}

// The SSE frames of POST /{tenant}/chat: {text} chunks, then {done: true, usage, ...}, or an error in
// the one error shape when the model failed after the answer began.
async function* frames(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of frame.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data && data !== "[DONE]") yield JSON.parse(data);
      }
    }
  }
}

// Which of the models we serve have a ready worker, from the public readiness probe (it answers 503,
// with the same body, while any has none); null when it cannot be read. Upstream models are not in it.
async function servedModels() {
  try {
    const response = await fetch("/readyz", { credentials: "omit" });
    const body = await response.json();
    return body.models || null;
  } catch {
    return null;
  }
}

export async function render(main, ctx) {
  const base = `/${encodeURIComponent(ctx.tenant)}`;
  const [models, stored, served] = await Promise.all([api(`${base}/models`), api(`${base}/conversations`, { query: { limit: PAGE } }), servedModels()]);
  const hasWorker = (m) => !served || !served[m.name] || served[m.name].status === "ok";
  // Models with a worker first: the one picked by default can answer.
  const chatModels = models.filter((m) => m.kind === "chat").sort((a, b) => hasWorker(b) - hasWorker(a));
  const heading = h("h2", {}, "Playground");
  if (chatModels.length === 0) {
    main.replaceChildren(heading, empty(
      "No chat model is available to this tenant. A platform admin can enable one (Models) or allow one in the tenant's limits."));
    return;
  }

  let conversationId = null;
  let streaming = null; // the AbortController of the answer being streamed

  const model = h("select", { name: "model", "aria-label": "Model" },
    chatModels.map((m) => h("option", { value: m.name, "data-served": hasWorker(m) ? "yes" : "no" },
      `${m.name} (${m.context_length} tokens)${hasWorker(m) ? "" : " · no worker running"}`)));
  const grounded = h("input", { name: "knowledge_base", type: "checkbox", role: "switch" });
  const system = h("textarea", { name: "system", rows: 2, placeholder: "You are a helpful assistant." });
  const temperature = h("input", { name: "temperature", type: "number", min: 0, max: 2, step: 0.1, placeholder: "model default" });
  const topP = h("input", { name: "top_p", type: "number", min: 0, max: 1, step: 0.05, placeholder: "model default" });
  const maxTokens = h("input", { name: "max_tokens", type: "number", min: 1, step: 1, placeholder: "model default" });
  const prompt = h("textarea", { name: "prompt", rows: 3, required: true, placeholder: "Ask something…" });
  const send = h("button", { type: "submit" }, "Send");
  const stop = h("button", { type: "button", class: "secondary", disabled: true, onClick: () => streaming && streaming.abort() }, "Stop");
  const messages = h("div", { class: "messages", "aria-live": "polite" });
  const status = h("div", {});
  const list = h("ul", {});
  const listErrors = h("div", {});
  const older = h("button", { type: "button", class: "secondary", hidden: true }, "Older conversations");
  let cursor = null;

  // The current conversation's button stands out; the others are outlined.
  const mark = () => {
    for (const button of list.querySelectorAll("button[data-conversation]")) {
      button.className = button.dataset.conversation === conversationId ? "" : "outline secondary";
    }
  };
  // A page of the list: the first replaces what is shown, a later one (`next`, a cursor) goes below it.
  const showConversations = (page, next) => {
    const items = page.data.map((c) => h("li", {}, h("button", {
      "data-conversation": c.id,
      title: when(c.updated_at),
      onClick: () => resume(c.id),
    }, c.title)));
    if (next) list.append(...items);
    else list.replaceChildren(...(items.length === 0
      ? [h("li", { class: "empty" }, "No conversations yet: your first message starts one.")]
      : items));
    cursor = page.next_cursor;
    older.hidden = !cursor;
    mark();
  };
  let loads = 0;
  const loadConversations = async (button, next) => {
    const mine = ++loads;
    await busy(button, listErrors, async () => {
      const page = await api(`${base}/conversations`, { query: { limit: PAGE, cursor: next } });
      if (mine === loads) showConversations(page, next); // else a later load's page is the one to show
    });
  };
  const reloadConversations = () => loadConversations(null, null);
  older.addEventListener("click", () => loadConversations(older, cursor));

  const resume = async (id) => {
    await busy(null, status, async () => {
      const detail = await api(`${base}/conversations/${encodeURIComponent(id)}`);
      conversationId = detail.id;
      messages.replaceChildren(...detail.messages.map((m) => message(m.role, m.content).article));
      mark();
    });
  };

  const number = (input) => (input.value === "" ? undefined : Number(input.value));

  const ask = async (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text || streaming) return;
    status.replaceChildren();
    if (conversationId === null) {
      try {
        conversationId = (await api(`${base}/conversations`, { method: "POST", json: { title: text.slice(0, 80) } })).id;
      } catch (error) {
        status.replaceChildren(errorBox(error));
        return;
      }
      reloadConversations();
    }
    messages.append(message("user", text).article);
    const answer = message("assistant", "");
    answer.article.setAttribute("aria-busy", "true");
    messages.append(answer.article);
    prompt.value = "";
    streaming = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    const started = performance.now();
    const timing = { firstMs: null, totalMs: 0 };
    let done = null;
    let cache = null;
    let outcome = null;
    try {
      const response = await api(`${base}/chat`, {
        method: "POST",
        raw: true,
        signal: streaming.signal,
        json: {
          prompt: text,
          model: model.value,
          system: system.value.trim() || undefined,
          temperature: number(temperature),
          top_p: number(topP),
          max_tokens: number(maxTokens),
          conversation_id: conversationId,
          knowledge_base: grounded.checked || undefined,
          stream: true,
        },
      });
      cache = response.headers.get("x-cache");
      for await (const frame of frames(response)) {
        if (frame.error) throw new ApiError(200, frame.error.message, frame.error.code);
        if (frame.done) {
          done = frame;
        } else if (typeof frame.text === "string") {
          if (timing.firstMs === null) timing.firstMs = Math.round(performance.now() - started);
          answer.body.textContent += frame.text;
        }
      }
    } catch (error) {
      outcome = error.name === "AbortError"
        ? h("p", { class: "muted stopped" }, "Stopped: the answer was cut short here, and only the tokens generated so far are billed.")
        : errorBox(error);
    } finally {
      timing.totalMs = Math.round(performance.now() - started);
      streaming = null;
      send.disabled = false;
      stop.disabled = true;
      answer.article.removeAttribute("aria-busy");
      answer.article.append(stats(done, timing, cache));
      const cited = done && citations(done.citations);
      if (cited) answer.article.append(cited);
      if (outcome) answer.article.append(outcome);
    }
  };

  const newConversation = h("button", {
    class: "outline",
    onClick: () => {
      conversationId = null;
      messages.replaceChildren();
      reloadConversations(); // back to the first page, the most recently active on top
    },
  }, "New conversation");

  showConversations(stored, null);
  main.replaceChildren(
    heading,
    h("div", { class: "playground" },
      h("aside", { class: "conversations" }, h("h3", {}, "Conversations"), newConversation, h("nav", {}, list), listErrors, older),
      h("section", {},
        h("form", { onSubmit: ask },
          h("div", { class: "sampling" },
            h("label", {}, "Model", model),
            h("label", {}, "Temperature", temperature),
            h("label", {}, "Top p", topP),
            h("label", {}, "Max tokens", maxTokens)),
          h("label", {}, grounded, "Ground answers in the knowledge base (answers cite the documents they were given)"),
          h("details", {}, h("summary", {}, "System prompt"), system),
          messages,
          status,
          h("label", {}, "Message", prompt),
          h("div", { class: "row-actions" }, send, stop)))));
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) ask(event);
  });
}
