// Usage: tokens and requests per day, by model and by key (admins: the tenant's; members: their own),
// and the month's tokens against the tenant's monthly quota.
import { api } from "../api.js";
import { busy, empty, h, pagedTable } from "../ui.js";

function bars(rows, label) {
  const most = Math.max(1, ...rows.map((r) => r.total_tokens));
  return h("div", { class: "bars", role: "img", "aria-label": "Tokens per group" },
    rows.flatMap((r) => {
      const bar = h("div", { class: "bar", title: `${r.total_tokens} tokens` });
      bar.style.width = `${(100 * r.total_tokens) / most}%`;
      return [h("span", {}, label(r)), bar, h("span", { class: "muted" }, `${r.total_tokens} tok`)];
    }));
}

export async function render(main, ctx) {
  const admin = ctx.me.role === "platform_admin" || ctx.me.role === "tenant_admin";
  const tenant = encodeURIComponent(ctx.tenant);
  const base = admin ? `/${tenant}/admin/usage` : `/${tenant}/usage`;
  const groupings = admin ? ["day", "model", "key"] : ["day", "model"];
  const names = new Map();
  if (admin) {
    for (const key of await api(`/${tenant}/admin/keys`)) names.set(key.id, `key ${key.name}`);
    for (const user of await api(`/${tenant}/admin/users`)) names.set(user.id, user.email);
  }
  const label = (r) => r.day || r.model || names.get(r.principal_id) || `${r.principal_kind} ${String(r.principal_id).slice(0, 8)}`;

  const groupBy = h("select", { name: "group_by" }, groupings.map((g) => h("option", { value: g }, `by ${g}`)));
  const from = h("input", { name: "from", type: "date" });
  const to = h("input", { name: "to", type: "date" });
  const show = h("button", { type: "submit" }, "Show");
  const messages = h("div", {});
  const report = h("section", {});
  const quota = h("section", {});

  const load = async () => {
    await busy(show, messages, async () => {
      const result = await api(base, { query: { group_by: groupBy.value, from: from.value, to: to.value } });
      if (result.rows.length === 0) {
        report.replaceChildren(empty(`No usage from ${result.from} to ${result.to}: calls to the models appear here once made (try the Playground).`));
        return;
      }
      const t = result.totals;
      report.replaceChildren(
        h("p", {}, `${result.from} to ${result.to}: ${t.requests} requests, ${t.total_tokens} tokens (${t.prompt_tokens} prompt + ${t.completion_tokens} completion), ${t.cached_hits} cache hits.`),
        bars(result.rows, label),
        pagedTable([
          { label: groupBy.value, cell: label },
          { label: "Requests", cell: (r) => String(r.requests) },
          { label: "Prompt tokens", cell: (r) => String(r.prompt_tokens) },
          { label: "Completion tokens", cell: (r) => String(r.completion_tokens) },
          { label: "Cache hits", cell: (r) => String(r.cached_hits) },
        ], result.rows, { pageSize: 31 }));
    });
  };

  if (admin) {
    try {
      const [limits, month] = await Promise.all([api(`/${tenant}/admin/limits`), api(base, { query: { group_by: "model" } })]);
      const used = month.totals.total_tokens;
      if (limits.monthly_token_quota) {
        const meter = h("progress", { class: "quota", max: limits.monthly_token_quota, value: Math.min(used, limits.monthly_token_quota) });
        quota.replaceChildren(h("h3", {}, "This month's quota"), meter,
          h("p", {}, `${used} of ${limits.monthly_token_quota} tokens used this month (${((100 * used) / limits.monthly_token_quota).toFixed(1)}%).`));
      } else {
        quota.replaceChildren(h("p", { class: "muted" }, `${used} tokens this month; no monthly quota is set.`));
      }
    } catch {
      quota.replaceChildren(); // the report below shows the error, if the API refuses
    }
  }

  main.replaceChildren(
    h("h2", {}, admin ? `Usage of ${ctx.tenant}` : "Your usage"),
    quota,
    h("form", { class: "inline-form", onSubmit: (event) => { event.preventDefault(); load(); } },
      h("label", {}, "Group", groupBy), h("label", {}, "From", from), h("label", {}, "To", to), show),
    messages, report);
  await load();
}
