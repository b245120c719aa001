// The audit log: a tenant's (its admins) or the platform chain (platform admins), filtered, a page at a
// time with the API's cursor, and "Verify chain": ok, or the first row where the hash chain breaks.
import { api } from "../api.js";
import { busy, empty, errorBox, h, notice, when } from "../ui.js";

const PAGE = 50;

function actor(row) {
  if (row.key_prefix) return `key ${row.key_prefix}…`;
  if (row.actor_kind) return `${row.actor_kind} ${row.actor_id ? row.actor_id.slice(0, 8) : ""}`;
  return "—";
}

function tokens(row) {
  if (row.prompt_tokens === null && row.completion_tokens === null) return "";
  return `${row.prompt_tokens ?? 0} + ${row.completion_tokens ?? 0}`;
}

export async function render(main, ctx) {
  const platform = ctx.scope === "platform";
  const base = platform ? "/admin/audit" : `/${encodeURIComponent(ctx.tenant)}/admin/audit`;
  const messages = h("div", {});
  const verdict = h("div", { id: "verify-result" });
  const body = h("tbody", {});
  const more = h("button", { class: "secondary", hidden: true }, "Older rows");
  const table = h("div", { class: "table-wrap" }, h("table", { class: "striped" },
    h("thead", {}, h("tr", {}, ["When", "Actor", "Action", "Resource", "Status", "Model", "Tokens", "Latency", "Cache"].map((c) => h("th", { scope: "col" }, c)))),
    body));
  let cursor = null;

  const action = h("input", { name: "action", placeholder: "e.g. create_api_key", maxlength: 64 });
  const status = h("input", { name: "status", type: "number", min: 100, max: 599, placeholder: "any" });
  const from = h("input", { name: "from", type: "date" });
  const to = h("input", { name: "to", type: "date" });

  const query = () => ({
    action: action.value.trim(),
    status: status.value,
    from: from.value ? `${from.value}T00:00:00Z` : "",
    to: to.value ? `${to.value}T23:59:59Z` : "",
    limit: PAGE,
  });

  const append = (rows) => rows.map((r) => h("tr", { "data-action": r.action },
    h("td", {}, when(r.at)), h("td", {}, actor(r)), h("td", {}, r.action), h("td", {}, r.resource),
    h("td", {}, String(r.status)), h("td", {}, r.model || ""), h("td", {}, tokens(r)),
    h("td", {}, `${r.latency_ms} ms`), h("td", {}, r.cache_hit === null ? "" : r.cache_hit ? "hit" : "miss")));

  const load = async (button, next) => {
    await busy(button, messages, async () => {
      const page = await api(base, { query: { ...query(), cursor: next } });
      if (!next) body.replaceChildren();
      body.append(...append(page.data));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      if (!next && page.data.length === 0) messages.replaceChildren(empty("No audit rows match: every change made through the API (and every model call) lands here."));
    });
  };
  more.addEventListener("click", () => load(more, cursor));

  const search = h("button", { type: "submit" }, "Apply filters");
  const verify = h("button", {
    class: "contrast",
    type: "button",
    onClick: async () => {
      await busy(verify, verdict, async () => {
        const result = await api(`${base}/verify`);
        verdict.replaceChildren(result.ok
          ? notice(`Chain verified: ok, ${result.rows} rows.`)
          : errorBox(new Error(`Chain broken at row seq ${result.first_bad_seq} (id ${result.first_bad_id}): ${result.reason}`)));
      });
    },
  }, "Verify chain");

  const filters = h("form", {
    class: "inline-form",
    onSubmit: (event) => {
      event.preventDefault();
      load(search, null);
    },
  },
  h("label", {}, "Action", action), h("label", {}, "Status", status),
  h("label", {}, "From", from), h("label", {}, "To", to), search);

  main.replaceChildren(
    h("h2", {}, platform ? "Platform audit log" : `Audit log of ${ctx.tenant}`),
    h("p", { class: "muted" }, platform
      ? "Actions outside any tenant: failed logins, tenant management."
      : "Every change to this tenant and every model call, hash-chained."),
    h("div", { class: "row-actions" }, verify), verdict,
    filters, messages, table, more);
  await load(search, null);
}
