// A tenant's users: create one, change a role, disable or enable, reset a password.
import { api } from "../api.js";
import { ask, busy, empty, h, notice, pagedTable, when } from "../ui.js";

const ROLES = ["member", "tenant_admin"];

export async function render(main, ctx) {
  const base = `/${encodeURIComponent(ctx.tenant)}/admin/users`;
  const messages = h("div", {});
  const listing = h("section", {});

  const change = async (button, user, body, done) => {
    await busy(button, messages, async () => {
      await api(`${base}/${encodeURIComponent(user.id)}`, { method: "PATCH", json: body });
      messages.replaceChildren(notice(done));
      draw(await api(base));
    });
  };

  const draw = (users) => {
    if (users.length === 0) {
      listing.replaceChildren(empty("No users yet: add the tenant's first admin above."));
      return;
    }
    listing.replaceChildren(pagedTable([
      { label: "Email", cell: (u) => u.email },
      {
        label: "Role",
        cell: (u) => h("select", {
          "aria-label": `Role of ${u.email}`,
          onChange: (event) => change(event.target, u, { role: event.target.value }, `${u.email} is now ${event.target.value}.`),
        }, ROLES.map((r) => h("option", { value: r, selected: r === u.role }, r))),
      },
      { label: "Status", cell: (u) => (u.disabled ? "disabled" : "active") },
      { label: "Created", cell: (u) => when(u.created_at) },
      {
        label: "",
        cell: (u) => h("div", { class: "row-actions" },
          h("button", {
            class: "secondary",
            onClick: async (event) => {
              const button = event.target;
              const verb = u.disabled ? "Enable" : "Disable";
              if (!(await ask(`${verb} ${u.email}?${u.disabled ? "" : " They can no longer sign in."}`, { confirm: verb, danger: !u.disabled }))) return;
              await change(button, u, { disabled: !u.disabled }, `${u.email} ${u.disabled ? "enabled" : "disabled"}.`);
            },
          }, u.disabled ? "Enable" : "Disable"),
          h("button", {
            class: "secondary outline",
            onClick: async (event) => {
              const button = event.target;
              const password = await ask(`A new password for ${u.email}:`, {
                confirm: "Set password",
                input: { type: "password", autocomplete: "new-password", label: "New password" },
              });
              if (!password) return;
              await busy(button, messages, async () => {
                await api(`${base}/${encodeURIComponent(u.id)}/password`, { method: "POST", json: { password } });
                messages.replaceChildren(notice(`Password of ${u.email} reset.`));
              });
            },
          }, "Reset password")),
      },
    ], users));
  };

  const email = h("input", { name: "email", type: "email", required: true, autocomplete: "off" });
  const password = h("input", { name: "password", type: "password", required: true, autocomplete: "new-password" });
  const role = h("select", { name: "role" }, ROLES.map((r) => h("option", { value: r }, r)));
  const create = h("button", { type: "submit" }, "Add user");
  const form = h("form", {
    class: "inline-form",
    onSubmit: async (event) => {
      event.preventDefault();
      await busy(create, messages, async () => {
        const user = await api(base, { method: "POST", json: { email: email.value.trim(), password: password.value, role: role.value } });
        form.reset();
        messages.replaceChildren(notice(`${user.email} added as ${user.role}.`));
        draw(await api(base));
      });
    },
  }, h("label", {}, "Email", email), h("label", {}, "Password", password), h("label", {}, "Role", role), create);

  draw(await api(base));
  main.replaceChildren(h("h2", {}, `Users of ${ctx.tenant}`), h("article", {}, h("header", {}, "New user"), form), messages, listing);
}
