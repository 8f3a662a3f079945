/*
 * The banking suite's tools: accounts, transactions, payees and the
 * customer's profile in SQLite, and each customer's bills as files. Every
 * call acts for the tenant (household) of the capability; tools take no
 * tenant from the model. Loaded sandboxed by the suite.
 */
import { z } from "zod";
import { defineTool } from "agentcap/sandbox";
import { on, rows, text, under, type DbEndowment, type FilesEndowment, type Row } from "./common.ts";

interface Endowed {
  readonly files: FilesEndowment;
  readonly db: DbEndowment;
  /** The bank's business day: tool code has no clock of its own. */
  readonly today: string;
}

/** Each household's files live in a folder named for its tenant. */
const at = (e: Endowed, tenant: string | null, path: string) => under(`${e.files.baseDir}/${tenant ?? "_"}`, path);
const relative = (e: Endowed, tenant: string | null, path: string) => at(e, tenant, path).slice(e.files.baseDir.length + 1);

const pathInput = z.object({ path: z.string().min(1).describe("Path of a file of your documents, such as bills/bill-december.txt.") });

export const readFile = defineTool<typeof pathInput, { path: string; text: string }, Endowed>(
  { name: "read_file", description: "Read one of your documents.", input: pathInput, needs: ({ path }, { endowments, tenant }) => [{ action: "fs.read", path: at(endowments, tenant, path), ...on(tenant) }] },
  async ({ path }, cap, { endowments, tenant }) => ({ path, text: text(await endowments.files.read(cap, relative(endowments, tenant, path), on(tenant))) }),
);

export const listFiles = defineTool<typeof pathInput, { path: string; entries: string[] }, Endowed>(
  { name: "list_files", description: "List a folder of your documents.", input: pathInput, needs: ({ path }, { endowments, tenant }) => [{ action: "fs.list", path: at(endowments, tenant, path), ...on(tenant) }] },
  async ({ path }, cap, { endowments, tenant }) => ({ path, entries: (await endowments.files.list(cap, relative(endowments, tenant, path), on(tenant))).map((e) => e.name).sort() }),
);

const none = z.object({});
const ACCOUNT = ["iban", "owner", "balance"] as const;

export const getBalance = defineTool<typeof none, Row[], Endowed>(
  { name: "get_balance", description: "Your accounts and their balances.", input: none, needs: (_i, { tenant }) => [rows("db.read", "Account", ACCOUNT, tenant)] },
  (_i, cap, { endowments, tenant }) => endowments.db.read(cap, { model: "Account", fields: ACCOUNT, ...on(tenant) }),
);

const TXN = ["id", "fromIban", "toIban", "amount", "subject", "date"] as const;

export const listTransactions = defineTool<typeof none, Row[], Endowed>(
  { name: "list_transactions", description: "Your most recent transactions, newest first.", input: none, needs: (_i, { tenant }) => [rows("db.read", "Txn", TXN, tenant)] },
  (_i, cap, { endowments, tenant }) => endowments.db.read(cap, { model: "Txn", fields: TXN, orderBy: [{ field: "id", direction: "desc" }], limit: 50, ...on(tenant) }),
);

const PAYEE = ["name", "iban", "addedOn"] as const;

export const listPayees = defineTool<typeof none, Row[], Endowed>(
  { name: "list_payees", description: "Your saved payees.", input: none, needs: (_i, { tenant }) => [rows("db.read", "Payee", PAYEE, tenant)] },
  (_i, cap, { endowments, tenant }) => endowments.db.read(cap, { model: "Payee", fields: PAYEE, ...on(tenant) }),
);

const payment = z.object({ toIban: z.string().min(5), amount: z.number().positive(), subject: z.string() });

export const sendMoney = defineTool<typeof payment, { sent: number; to: string; balance: number }, Endowed>(
  {
    name: "send_money",
    description: "Transfer money from your account to an IBAN.",
    input: payment,
    needs: (_i, { tenant }) => [rows("db.read", "Account", ["iban", "balance"], tenant), rows("db.create", "Txn", ["fromIban", "toIban", "amount", "subject", "date"], tenant), rows("db.update", "Account", ["balance"], tenant)],
  },
  async ({ toIban, amount, subject }, cap, { endowments, tenant }) => {
    const [account] = await endowments.db.read(cap, { model: "Account", fields: ["iban", "balance"], limit: 1, ...on(tenant) });
    if (account === undefined) throw new Error("no account");
    const balance = Number(account.balance) - amount;
    await endowments.db.create(cap, { model: "Txn", values: { fromIban: account.iban ?? "", toIban, amount, subject, date: endowments.today }, ...on(tenant) });
    await endowments.db.update(cap, { model: "Account", set: { balance }, where: { iban: account.iban ?? "" }, ...on(tenant) });
    return { sent: amount, to: toIban, balance };
  },
);

const payeeInput = z.object({ name: z.string().min(1), iban: z.string().min(5) });

export const addPayee = defineTool<typeof payeeInput, { added: string }, Endowed>(
  { name: "add_payee", description: "Save a new payee.", input: payeeInput, needs: (_i, { tenant }) => [rows("db.create", "Payee", PAYEE, tenant)] },
  async ({ name, iban }, cap, { endowments, tenant }) => {
    await endowments.db.create(cap, { model: "Payee", values: { name, iban, addedOn: endowments.today }, ...on(tenant) });
    return { added: name };
  },
);

const profileInput = z.object({ address: z.string().min(1).optional(), phone: z.string().min(3).optional() });

export const updateProfile = defineTool<typeof profileInput, { updated: string[] }, Endowed>(
  {
    name: "update_profile",
    description: "Change your postal address or phone number.",
    input: profileInput,
    needs: (input, { tenant }) => [rows("db.update", "Profile", Object.keys(input), tenant)],
  },
  async (input, cap, { endowments, tenant }) => {
    const set = Object.fromEntries(Object.entries(input).filter((e): e is [string, string] => typeof e[1] === "string"));
    await endowments.db.update(cap, { model: "Profile", set, ...on(tenant) });
    return { updated: Object.keys(set) };
  },
);
