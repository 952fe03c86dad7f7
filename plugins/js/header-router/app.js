// Switchyard header router in JavaScript (componentize-js).
//
// Same behaviour as the Rust `header-router`: routes by the value of one header.
// Config: `header` (default `route`), `route.<value>` -> queue, `default` -> queue for the rest;
// without `default`, unmatched messages are dead-lettered.
import { get } from 'switchyard:plugin/config@0.1.0';

function headerText(value) {
  switch (value.tag) {
    case 'text':
      return value.val;
    case 'boolean':
    case 'int8': case 'uint8': case 'int16': case 'uint16':
    case 'int32': case 'uint32': case 'int64': case 'uint64':
      return String(value.val);
    default:
      return undefined;
  }
}

export function route(msg, ctx) {
  const header = get('header') ?? 'route';
  let value;
  for (const [name, v] of msg.headers) {
    if (name === header) {
      value = headerText(v);
      break;
    }
  }
  let queue = value !== undefined ? get(`route.${value}`) : undefined;
  if (queue === undefined) queue = get('default');
  if (queue === undefined) {
    return {
      tag: 'dead-letter',
      val: value === undefined ? `missing header ${header}` : `no route for ${header}=${value}`,
    };
  }
  return { tag: 'deliver', val: [{ target: { tag: 'queue', val: queue } }] };
}
