// A tenant's API keys: create one (scopes, expiry, its own limits), its secret shown exactly once with a
// copy button, the list, and revoking with a confirmation.
import { api } from "../api.js";
import { ask, busy, empty, h, notice, pagedTable, when } from "../ui.js";

const SCOPES = [
  ["inference", "inference: chat, completions, embeddings"],
  ["admin", "admin: this tenant's admin API"],
  ["kb:write", "kb:write: knowledge-base uploads"],
];

function secretPanel(created) {
  const code = h("code", { id: "new-key-secret" }, created.key);
  const copied = h("span", { class: "muted", role: "status" });
  const copy = h("button", {
    type: "button",
    onClick: async () => {
      try {
        await navigator.clipboard.writeText(created.key);
        copied.textContent = " Copied.";
      } catch {
        // No clipboard (an http page that is not localhost): select it for the user to copy.
        window.getSelection().selectAllChildren(code);
        copied.textContent = " Selected: press Ctrl+C to copy.";
      }
    },
  }, "Copy");
  return h("article", { class: "secret", role: "alert" },
    h("header", {}, h("strong", {}, `Key "${created.name}" created`)),
    h("p", {}, "Copy this key now. It is shown only this once: the platform keeps only its hash, and nobody can show it again."),
    h("p", {}, code),
    h("p", {}, copy, copied));
}

function status(key) {
  if (key.revoked_at) return `revoked ${when(key.revoked_at)}`;
  if (key.expires_at && new Date(key.expires_at) < new Date()) return `expired ${when(key.expires_at)}`;
  return "active";
}

export async function render(main, ctx) {
  const base = `/${encodeURIComponent(ctx.tenant)}/admin/keys`;
  const keys = await api(base);
  const secret = h("div", {});
  const errors = h("div", {});
  const listing = h("section", {});

  const drawList = (rows) => {
    if (rows.length === 0) {
      listing.replaceChildren(empty("No API keys yet: create one above to call the API from code."));
      return;
    }
    listing.replaceChildren(pagedTable([
      { label: "Name", cell: (k) => k.name },
      { label: "Prefix", cell: (k) => h("code", {}, k.prefix) },
      { label: "Scopes", cell: (k) => k.scopes.join(", ") },
      { label: "Created", cell: (k) => when(k.created_at) },
      { label: "Expires", cell: (k) => (k.expires_at ? when(k.expires_at) : "never") },
      { label: "Last used", cell: (k) => when(k.last_used_at) },
      { label: "Status", cell: status },
      {
        label: "",
        cell: (k) => (k.revoked_at ? "" : h("button", {
          class: "secondary",
          "aria-label": `Revoke ${k.name}`,
          onClick: async (event) => {
            const sure = await ask(`Revoke the key "${k.name}" (${k.prefix}…)? Every client using it stops working at once.`,
              { confirm: "Revoke", danger: true });
            if (!sure) return;
            await busy(event.target, errors, async () => {
              await api(`${base}/${encodeURIComponent(k.id)}`, { method: "DELETE" });
              secret.replaceChildren(notice(`Key "${k.name}" revoked.`));
              drawList(await api(base));
            });
          },
        }, "Revoke")),
      },
    ], rows));
  };

  const name = h("input", { name: "name", required: true, maxlength: 100, placeholder: "ci-pipeline" });
  const scopeBoxes = SCOPES.map(([value, label]) =>
    h("label", {}, h("input", { type: "checkbox", name: "scopes", value, checked: value === "inference" ? "" : null }), label));
  const expires = h("input", { name: "expires_at", type: "date" });
  const rpm = h("input", { name: "requests_per_minute", type: "number", min: 1, placeholder: "tenant's" });
  const tpm = h("input", { name: "tokens_per_minute", type: "number", min: 1, placeholder: "tenant's" });
  const monthly = h("input", { name: "monthly_token_quota", type: "number", min: 1, placeholder: "tenant's" });
  const create = h("button", { type: "submit" }, "Create key");
  const optional = (input) => (input.value === "" ? null : Number(input.value));
  const form = h("form", {
    onSubmit: async (event) => {
      event.preventDefault();
      secret.replaceChildren();
      await busy(create, errors, async () => {
        const created = await api(base, {
          method: "POST",
          json: {
            name: name.value.trim(),
            scopes: scopeBoxes.map((l) => l.firstChild).filter((c) => c.checked).map((c) => c.value),
            expires_at: expires.value ? `${expires.value}T23:59:59Z` : null,
            requests_per_minute: optional(rpm),
            tokens_per_minute: optional(tpm),
            monthly_token_quota: optional(monthly),
          },
        });
        form.reset();
        secret.replaceChildren(secretPanel(created));
        drawList(await api(base));
      });
    },
  },
  h("div", { class: "inline-form" }, h("label", {}, "Name", name), h("label", {}, "Expires (UTC day)", expires)),
  h("fieldset", {}, h("legend", {}, "Scopes"), scopeBoxes),
  h("details", {}, h("summary", {}, "Limits of this key (empty: the tenant's apply)"),
    h("div", { class: "inline-form" },
      h("label", {}, "Requests per minute", rpm),
      h("label", {}, "Tokens per minute", tpm),
      h("label", {}, "Monthly token quota", monthly))),
  create);

  drawList(keys);
  main.replaceChildren(
    h("h2", {}, `API keys of ${ctx.tenant}`),
    secret,
    errors,
    h("article", {}, h("header", {}, "New key"), form),
    listing);
}
