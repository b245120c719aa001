// Platform admins: the model catalogue. Register an OpenAI-compatible upstream, enable or disable a
// model, set its default sampling parameters; and the live workers of each model, refreshed while the
// page is open.
import { api } from "../api.js";
import { ask, busy, empty, errorBox, h, notice, pagedTable, when } from "../ui.js";

const WORKERS_REFRESH_MS = 5000;

const PARAMS = [
  ["max_tokens", "Max tokens", 1],
  ["temperature", "Temperature", 0.1],
  ["top_p", "Top p", 0.05],
  ["top_k", "Top k", 1],
  ["repetition_penalty", "Repetition penalty", 0.05],
];

function paramsOf(inputs) {
  return Object.fromEntries(PARAMS.filter(([name]) => inputs[name].value !== "").map(([name]) => [name, Number(inputs[name].value)]));
}

function paramInputs(values = {}) {
  return Object.fromEntries(PARAMS.map(([name, , step]) => [name,
    h("input", { name, type: "number", step, min: 0, value: values[name] ?? "", placeholder: "engine's", "aria-label": name })]));
}

export async function render(main) {
  const messages = h("div", {});
  const listing = h("section", {});
  const path = (m) => `/admin/models/${m.name.split("/").map(encodeURIComponent).join("/")}`;

  const patch = async (button, model, body, done) => {
    await busy(button, messages, async () => {
      await api(path(model), { method: "PATCH", json: body });
      messages.replaceChildren(notice(done));
      draw(await api("/admin/models"));
    });
  };

  const draw = (models) => {
    if (models.length === 0) {
      listing.replaceChildren(empty("No models yet: register an upstream above, or run `llmp admin bootstrap-demo`."));
      return;
    }
    listing.replaceChildren(pagedTable([
      { label: "Name", cell: (m) => m.name },
      { label: "Kind", cell: (m) => m.kind },
      { label: "Backend", cell: (m) => m.backend },
      { label: "Context", cell: (m) => String(m.context_length) },
      { label: "Defaults", cell: (m) => Object.entries(m.default_params).filter(([, v]) => v !== null).map(([k, v]) => `${k}=${v}`).join(", ") || "—" },
      { label: "Status", cell: (m) => (m.enabled ? "enabled" : "disabled") },
      { label: "Updated", cell: (m) => when(m.updated_at) },
      {
        label: "",
        cell: (m) => h("div", { class: "row-actions" },
          h("button", {
            class: "secondary",
            onClick: async (event) => {
              const button = event.target;
              const verb = m.enabled ? "Disable" : "Enable";
              if (!(await ask(`${verb} ${m.name}?${m.enabled ? " Calls to it are refused until it is enabled again." : ""}`, { confirm: verb, danger: m.enabled }))) return;
              await patch(button, m, { enabled: !m.enabled }, `${m.name} ${m.enabled ? "disabled" : "enabled"}.`);
            },
          }, m.enabled ? "Disable" : "Enable"),
          h("button", {
            class: "secondary outline",
            onClick: (event) => {
              const row = event.target.closest("tr");
              const inputs = paramInputs(m.default_params);
              const save = h("button", { type: "submit" }, "Save defaults");
              const editor = h("tr", {}, h("td", { colspan: 8 }, h("form", {
                class: "inline-form",
                onSubmit: async (submitted) => {
                  submitted.preventDefault();
                  await patch(save, m, { default_params: paramsOf(inputs) }, `Defaults of ${m.name} saved.`);
                },
              }, PARAMS.map(([name, label]) => h("label", {}, label, inputs[name])), save)));
              row.after(editor);
            },
          }, "Defaults")),
      },
    ], models));
  };

  const name = h("input", { name: "name", required: true, placeholder: "gpt-4o-mini" });
  const source = h("input", { name: "source", required: true, placeholder: "the upstream's model id" });
  const baseUrl = h("input", { name: "base_url", type: "url", required: true, placeholder: "https://api.example.com/v1" });
  const context = h("input", { name: "context_length", type: "number", min: 16, value: 4096 });
  const inputs = paramInputs();
  const register = h("button", { type: "submit" }, "Register upstream");
  const form = h("form", {
    onSubmit: async (event) => {
      event.preventDefault();
      await busy(register, messages, async () => {
        const model = await api("/admin/models", {
          method: "POST",
          json: { name: name.value.trim(), backend: "openai", kind: "chat", source: source.value.trim(), base_url: baseUrl.value.trim(), context_length: Number(context.value), default_params: paramsOf(inputs) },
        });
        form.reset();
        messages.replaceChildren(notice(`${model.name} registered. Its API key goes in LLMP_UPSTREAM_API_KEYS on the API servers.`));
        draw(await api("/admin/models"));
      });
    },
  },
  h("div", { class: "inline-form" }, h("label", {}, "Name", name), h("label", {}, "Upstream model", source), h("label", {}, "Base URL", baseUrl), h("label", {}, "Context length", context)),
  h("details", {}, h("summary", {}, "Default parameters"), h("div", { class: "inline-form" }, PARAMS.map(([n, label]) => h("label", {}, label, inputs[n])))),
  register);

  const catalogue = await api("/admin/models");
  draw(catalogue);
  const workers = workersSection(main, catalogue);
  main.replaceChildren(h("h2", {}, "Models"),
    h("article", {}, h("header", {}, "Register an OpenAI-compatible upstream"), form), messages, listing, workers);
}

function age(seconds) {
  return seconds < 60 ? `${seconds.toFixed(1)} s ago` : `${Math.round(seconds / 60)} min ago`;
}

// The live workers, one table row per worker and model, and the enabled models we serve that have none:
// what a platform admin checks when calls to a model answer 503.
function workersSection(main, catalogue) {
  const table = h("div", {});
  const problems = h("div", {});
  const refreshed = h("span", { class: "muted" });
  const refresh = h("button", { class: "secondary outline", type: "button" }, "Refresh");

  const draw = (workers) => {
    const rows = workers.flatMap((w) => w.models.map((model) => ({ model, ...w })))
      .sort((a, b) => a.model.localeCompare(b.model) || a.worker_id.localeCompare(b.worker_id));
    const served = new Set(rows.filter((r) => r.state === "ready").map((r) => r.model));
    const unserved = catalogue.filter((m) => m.enabled && m.backend === "hf" && !served.has(m.name)).map((m) => m.name);
    problems.replaceChildren(unserved.length
      ? h("p", { class: "error", id: "models-without-workers" }, `No ready worker: ${unserved.join(", ")}. Calls to ${unserved.length === 1 ? "it" : "them"} answer 503 until one starts (llmp worker --model NAME).`)
      : "");
    if (rows.length === 0) {
      table.replaceChildren(empty("No live workers: start one with `llmp worker --model NAME` (`make run` starts the bundled model's)."));
      return;
    }
    table.replaceChildren(h("div", { class: "table-wrap" }, h("table", { class: "striped", id: "workers" },
      h("thead", {}, h("tr", {}, ["Model", "Worker", "State", "Load", "Queued", "Last heartbeat", "URL"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((r) => h("tr", { "data-worker": r.worker_id, "data-model": r.model },
        h("td", { "data-label": "Model" }, r.model),
        h("td", { "data-label": "Worker" }, r.worker_id),
        h("td", { "data-label": "State" }, r.state),
        h("td", { "data-label": "Load" }, `${r.load} / ${r.capacity}`),
        h("td", { "data-label": "Queued" }, r.queued === null ? "—" : String(r.queued)),
        h("td", { "data-label": "Last heartbeat", title: when(r.heartbeat_at) }, age(r.heartbeat_age_s)),
        h("td", { "data-label": "URL" }, h("code", {}, r.url))))))));
  };

  let timer = null;
  const load = async () => {
    clearTimeout(timer);
    // Stop polling once the page is gone (another page, or signed out).
    if (!main.isConnected && timer !== null) return;
    await busy(refresh, problems, async () => {
      draw(await api("/admin/workers"));
      refreshed.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    });
    timer = setTimeout(load, WORKERS_REFRESH_MS);
  };
  refresh.addEventListener("click", load);
  load().catch((error) => problems.replaceChildren(errorBox(error)));
  return h("section", { id: "live-workers" },
    h("h3", {}, "Live workers"),
    h("p", { class: "muted" }, "Load is running and queued sequences against the worker's capacity. Refreshed every few seconds."),
    h("div", { class: "row-actions" }, refresh, refreshed),
    problems, table);
}
