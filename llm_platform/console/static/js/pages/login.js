// Sign in: the platform's password login (tenant slug + email + password; platform admins leave the
// tenant empty). The refresh token comes back as an HttpOnly cookie, the access token stays in memory.
import { signIn } from "../api.js";
import { busy, h, notice } from "../ui.js";

let ended = false;

export function sessionEnded() {
  ended = true;
}

export function render(main, ctx) {
  const status = h("div", {});
  if (ended) status.append(notice("Your session has ended: sign in again."));
  ended = false;
  const tenant = h("input", { name: "tenant", autocomplete: "organization", placeholder: "acme" });
  const email = h("input", { name: "email", type: "email", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h("form", {
    onSubmit: async (event) => {
      event.preventDefault();
      await busy(submit, status, async () => {
        await signIn({ tenant: tenant.value.trim(), email: email.value.trim(), password: password.value });
        password.value = "";
        await ctx.signedIn();
      });
    },
  },
  h("label", {}, "Tenant", tenant, h("small", {}, "Your organisation's slug. Platform admins leave it empty.")),
  h("label", {}, "Email", email),
  h("label", {}, "Password", password),
  submit);
  main.replaceChildren(h("article", { class: "login" }, h("h1", {}, "Sign in"), status, form));
  document.title = "Sign in · llm-platform console";
  tenant.focus();
}
