/**
 * redactUrl hides the password of a URL (`redis://user:***@host:6379`), or
 * the whole user part when it has no ':', so that a setting can be quoted in
 * an error or a log line. It lives at the bottom of the tree so that the
 * store and the composition root can both use it. It works on text that is not a valid URL too: the
 * user part is whatever precedes the last '@'.
 */
export function redactUrl(raw: string): string {
  const at = raw.lastIndexOf("@");
  if (at < 0) return raw;
  const scheme = raw.indexOf("://");
  const start = scheme >= 0 && scheme < at ? scheme + 3 : 0;
  const userinfo = raw.slice(start, at);
  const colon = userinfo.indexOf(":");
  const shown = colon < 0 ? "***" : `${userinfo.slice(0, colon)}:***`;
  return `${raw.slice(0, start)}${shown}${raw.slice(at)}`;
}
