// A tenant's limits and quotas (platform admins change them; tenant admins read them, as the API
// decides) and its settings: the response cache and what the audit log keeps.
import { api } from "../api.js";
import { busy, h, notice } from "../ui.js";

const LIMITS = [
  ["requests_per_minute", "Requests per minute"],
  ["tokens_per_minute", "Tokens per minute"],
  ["concurrent_requests", "Concurrent requests"],
  ["daily_token_quota", "Daily token quota"],
  ["monthly_token_quota", "Monthly token quota"],
];
const SETTINGS = [
  ["cache_enabled", "Cache answers", "checkbox"],
  ["cache_sampled", "Cache sampled answers too (temperature > 0)", "checkbox"],
  ["cache_ttl_s", "Cache entry lifetime (s)", "number"],
  ["cache_max_entry_bytes", "Largest cached answer (bytes)", "number"],
  ["audit_store_text", "Keep prompts and answers in the audit log", "checkbox"],
];

function limitsForm(base, limits, editable) {
  const messages = h("div", {});
  const inputs = Object.fromEntries(LIMITS.map(([name]) => [name,
    h("input", { name, type: "number", min: 1, value: limits[name] ?? "", placeholder: "unlimited", disabled: !editable })]));
  const models = h("input", { name: "allowed_models", value: (limits.allowed_models || []).join(", "), placeholder: "every model", disabled: !editable });
  const failMode = h("select", { name: "fail_mode", disabled: !editable },
    ["open", "closed"].map((m) => h("option", { value: m, selected: limits.fail_mode === m }, m)));
  const save = h("button", { type: "submit", hidden: !editable }, "Save limits");
  const form = h("form", {
    onSubmit: async (event) => {
      event.preventDefault();
      await busy(save, messages, async () => {
        const body = Object.fromEntries(LIMITS.map(([name]) => [name, inputs[name].value === "" ? null : Number(inputs[name].value)]));
        const names = models.value.split(",").map((m) => m.trim()).filter(Boolean);
        body.allowed_models = names.length ? names : null;
        body.fail_mode = failMode.value;
        await api(base, { method: "PUT", json: body });
        messages.replaceChildren(notice("Limits saved."));
      });
    },
  },
  h("div", { class: "inline-form" }, LIMITS.map(([name, label]) => h("label", {}, label, inputs[name]))),
  h("label", {}, "Allowed models (comma-separated; empty: every enabled model)", models),
  h("label", {}, "When Redis is unreachable", failMode),
  save, messages);
  return h("article", {}, h("header", {}, "Limits and quotas"),
    editable ? null : h("p", { class: "muted" }, "Read only: a platform admin sets a tenant's limits."), form);
}

function settingsForm(base, settings) {
  const messages = h("div", {});
  const inputs = Object.fromEntries(SETTINGS.map(([name, , type]) => [name, type === "checkbox"
    ? h("input", { name, type: "checkbox", role: "switch", checked: Boolean(settings[name]) })
    : h("input", { name, type: "number", min: 1, value: settings[name] ?? "" })]));
  const save = h("button", { type: "submit" }, "Save settings");
  const form = h("form", {
    onSubmit: async (event) => {
      event.preventDefault();
      await busy(save, messages, async () => {
        const body = Object.fromEntries(SETTINGS.map(([name, , type]) => [name, type === "checkbox" ? inputs[name].checked : Number(inputs[name].value)]));
        await api(base, { method: "PATCH", json: body });
        messages.replaceChildren(notice("Settings saved."));
      });
    },
  },
  SETTINGS.map(([name, label, type]) => (type === "checkbox"
    ? h("label", {}, inputs[name], label)
    : h("label", {}, label, inputs[name]))),
  save, messages);
  return h("article", {}, h("header", {}, "Settings"), form);
}

export async function render(main, ctx) {
  const base = `/${encodeURIComponent(ctx.tenant)}/admin`;
  const [limits, settings] = await Promise.all([api(`${base}/limits`), api(`${base}/settings`)]);
  main.replaceChildren(
    h("h2", {}, `Limits and settings of ${ctx.tenant}`),
    limitsForm(`${base}/limits`, limits, ctx.me.role === "platform_admin"),
    settingsForm(`${base}/settings`, settings));
}
