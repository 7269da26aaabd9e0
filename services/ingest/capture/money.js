// Cash is integer pence everywhere; pounds and pence only on screen. No floating point.
const whole = new Intl.NumberFormat("en-GB");

// "1,234.5", "£1234.56" or "80" -> pence (123450, 123456, 8000); null when not an amount.
export function parsePounds(text) {
  const match = /^(\d{1,9})(?:\.(\d{1,2}))?$/.exec(String(text).replace(/[£,\s]/g, ""));
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] || "0").padEnd(2, "0"));
}

// 123456 -> "£1,234.56"
export function formatPence(pence) {
  const pounds = Math.floor(pence / 100);
  return `£${whole.format(pounds)}.${String(pence % 100).padStart(2, "0")}`;
}

// 123456 -> "1234.56" (what the amount field shows when an entry is edited)
export function penceToInput(pence) {
  return `${Math.floor(pence / 100)}.${String(pence % 100).padStart(2, "0")}`;
}
