import { describe, expect, it } from 'vitest';
import { normaliseRequestPath } from '../../../src/gateway/request-path.js';

const path = (target: string) => {
  const result = normaliseRequestPath(target);
  return result.ok ? `${result.path}${result.query}` : `refused: ${result.problem}`;
};

describe('normaliseRequestPath', () => {
  it.each([
    ['/catalog/items', '/catalog/items'],
    ['/catalog/items?x=1&y=/../z', '/catalog/items?x=1&y=/../z'],
    ['/catalog//items///1', '/catalog/items/1'],
    ['/catalog/./items/.', '/catalog/items/'],
    ['/catalog/items/../admin', '/catalog/admin'],
    ['/catalog/../user/secrets', '/user/secrets'],
    ['/../../../etc/passwd', '/etc/passwd'],
    ['/catalog/%2e%2e/user', '/user'],
    ['/catalog/%2E%2e/user', '/user'],
    ['/catalog/.%2e/user', '/user'],
    ['/catalog/%2e/items', '/catalog/items'],
    ['/catalog\\..\\user', '/user'],
    ['/catalog;jsessionid=1/items', '/catalog/items'],
    ['/catalog/..;/user', '/user'],
    ['/catalog/items;v=2', '/catalog/items'],
    ['/catalog/b%2e%2e/c', '/catalog/b../c'],
    ['/c%61talog/items', '/c%61talog/items'],
    ['/catalog/items/..', '/catalog/'],
    ['/catalog/items/', '/catalog/items/'],
    ['/', '/'],
    ['/..', '/'],
    ['http://gateway.example/catalog/items?x=1', '/catalog/items?x=1'],
    ['HTTPS://gateway.example', '/'],
  ])('%s → %s', (target, expected) => {
    expect(path(target)).toBe(expected);
  });

  it.each([
    ['/catalog%2fitems', 'encoded "/"'],
    ['/catalog/%2F../user', 'encoded "/"'],
    ['/catalog%5c..%5cuser', 'encoded "/" or "\\"'],
    ['/catalog/%zz', 'malformed percent-escape'],
    ['/catalog/%2', 'malformed percent-escape'],
    ['/catalog/%00', 'encoded NUL'],
    ['/catalog/a\u0000b', 'control character'],
    ['/catalog/a\tb', 'control character'],
    ['/catalog#frag', '"#"'],
    ['*', 'must be a path'],
    ['catalog/items', 'must be a path'],
  ])('refuses %j (%s)', (target, problem) => {
    expect(path(target)).toMatch(/^refused: /);
    expect(path(target)).toContain(problem);
  });
});
