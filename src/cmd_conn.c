/*
 * cmd_conn.c - connection commands: PING, ECHO, AUTH, HELLO, SELECT,
 * QUIT, RESET, CLIENT and COMMAND.  Replies and error texts are Redis 7's.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmds.h"
#include "srv_config.h"
#include "server.h"
#include "util.h"

#define CLIENT_NAME_MAX 256u

/* Compares the whole secret whatever the input, so the time taken says
 * nothing about how much of a guess was right. */
static int secret_eq(const char *given, size_t gn, const char *secret) {
  size_t sn = strlen(secret);
  volatile unsigned diff = gn != sn;
  for (size_t i = 0; i < sn; i++)
    diff |= (unsigned char)secret[i] ^ (unsigned char)(i < gn ? given[i] : 0);
  return diff == 0;
}

static void reply_unknown_sub(struct client *c, const char *cmd) {
  reply_errorf(c, "ERR unknown subcommand '%.128s'. Try %s HELP.", c->argv[1], cmd);
}

/* ------------------------------------------------------------------------
 * PING, ECHO, SELECT, QUIT
 * --------------------------------------------------------------------- */

void cmd_ping(struct client *c) {
  if (c->argc > 2) {
    reply_error(c, "ERR wrong number of arguments for 'ping' command");
    return;
  }
  /* RESP2 subscribers get a push-style pong, as in Redis. */
  if (c->proto == 2 && c->nsubs) {
    reply_array(c, 2);
    reply_cstr(c, "pong");
    if (c->argc == 2) reply_bulk(c, c->argv[1], c->argvlen[1]);
    else reply_cstr(c, "");
    return;
  }
  if (c->argc == 2) reply_bulk(c, c->argv[1], c->argvlen[1]);
  else reply_status(c, "PONG");
}

void cmd_echo(struct client *c) { reply_bulk(c, c->argv[1], c->argvlen[1]); }

void cmd_select(struct client *c) {
  long long db;
  if (cmd_parse_ll(c->argv[1], &db)) {
    reply_error(c, ERR_NOTINT);
    return;
  }
  if (db < 0 || db >= SRV_DBS) {
    reply_error(c, ERR_DBINDEX);
    return;
  }
  c->db = (int)db;
  reply_ok(c);
}

void cmd_quit(struct client *c) {
  reply_ok(c);
  c->flags |= CLIENT_CLOSE_AFTER_REPLY;
}

/* ------------------------------------------------------------------------
 * AUTH and HELLO
 * --------------------------------------------------------------------- */

/* Check user / password; on success authenticate c.  user NULL means the
 * default user.  Returns 0, or -1 after replying with the error. */
static int authenticate(struct client *c, const char *user, const char *pass,
                        size_t passlen) {
  const struct srv_config *cfg = c->srv->cfg;
  if (!user || !strcmp(user, "default")) {
    if (!user && !cfg->requirepass[0]) {
      reply_error(c, "ERR AUTH <password> called without any password "
                     "configured for the default user. Are you sure your "
                     "configuration is correct?");
      return -1;
    }
    if (!cfg->requirepass[0] || secret_eq(pass, passlen, cfg->requirepass)) {
      c->authed = 1;
      c->readonly_user = 0;
      c->user = "default";
      return 0;
    }
  } else {
    for (unsigned i = 0; i < cfg->nusers; i++) {
      const struct cfg_user *u = &cfg->users[i];
      if (strcmp(u->name, user)) continue;
      if (!secret_eq(pass, passlen, u->pass)) break;
      c->authed = 1;
      c->readonly_user = u->readonly;
      c->user = u->name;
      return 0;
    }
  }
  srv_log(CAIRN_LOG_WARN, NULL, "client %llu (%s): authentication failed",
          (unsigned long long)c->id, c->addr);
  reply_error(c, "WRONGPASS invalid username-password pair or user is disabled.");
  return -1;
}

void cmd_auth(struct client *c) {
  if (c->argc > 3) {
    reply_error(c, ERR_SYNTAX);
    return;
  }
  const char *user = c->argc == 3 ? c->argv[1] : NULL;
  int pi = c->argc - 1;
  if (!authenticate(c, user, c->argv[pi], c->argvlen[pi])) reply_ok(c);
}

static int valid_name(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] < '!' || s[i] > '~') return 0;
  return 1;
}

static int set_name(struct client *c, const char *s, size_t n) {
  if (!valid_name(s, n) || n > CLIENT_NAME_MAX) {
    reply_error(c, "ERR Client names cannot contain spaces, newlines or "
                   "special characters.");
    return -1;
  }
  char *nm = n ? strndup(s, n) : NULL;
  if (n && !nm) {
    reply_error(c, "OOM command not allowed: out of memory");
    return -1;
  }
  free(c->name);
  c->name = nm;
  return 0;
}

static void hello_reply(struct client *c) {
  reply_map(c, 7);
  reply_cstr(c, "server");
  reply_cstr(c, "redis");
  reply_cstr(c, "version");
  reply_cstr(c, SRV_REDIS_VERSION);
  reply_cstr(c, "proto");
  reply_int(c, c->proto);
  reply_cstr(c, "id");
  reply_int(c, (long long)c->id);
  reply_cstr(c, "mode");
  reply_cstr(c, "standalone");
  reply_cstr(c, "role");
  reply_cstr(c, "master");
  reply_cstr(c, "modules");
  reply_array(c, 0);
}

void cmd_hello(struct client *c) {
  long long ver = c->proto;
  int i = 1;
  if (c->argc >= 2) {
    if (cmd_parse_ll(c->argv[1], &ver)) {
      reply_error(c, "ERR Protocol version is not an integer or out of range");
      return;
    }
    if (ver < 2 || ver > 3) {
      reply_error(c, "NOPROTO unsupported protocol version");
      return;
    }
    i = 2;
  }
  const char *user = NULL, *pass = NULL, *name = NULL;
  size_t passlen = 0, namelen = 0;
  for (; i < c->argc; i++) {
    if (cmd_arg_is(c, i, "AUTH") && i + 2 < c->argc) {
      user = c->argv[i + 1];
      pass = c->argv[i + 2];
      passlen = c->argvlen[i + 2];
      i += 2;
    } else if (cmd_arg_is(c, i, "SETNAME") && i + 1 < c->argc) {
      name = c->argv[i + 1];
      namelen = c->argvlen[i + 1];
      i++;
    } else {
      reply_errorf(c, "ERR Syntax error in HELLO option '%.128s'", c->argv[i]);
      return;
    }
  }
  if (user && authenticate(c, user, pass, passlen)) return;
  if (!c->authed) {
    reply_error(c, "NOAUTH HELLO must be called with the client already "
                   "authenticated, otherwise the HELLO <proto> AUTH <user> "
                   "<pass> option can be used to authenticate the client and "
                   "select the RESP protocol version at the same time");
    return;
  }
  if (name && set_name(c, name, namelen)) return;
  c->proto = (int)ver;
  hello_reply(c);
}

void cmd_reset(struct client *c) {
  if (multi_client_reset) multi_client_reset(c);
  if (pubsub_client_reset) pubsub_client_reset(c);
  c->db = 0;
  c->proto = 2;
  free(c->name);
  c->name = NULL;
  c->authed = c->srv->cfg->requirepass[0] == '\0';
  c->readonly_user = 0;
  c->user = "default";
  reply_status(c, "RESET");
}

/* ------------------------------------------------------------------------
 * CLIENT
 * --------------------------------------------------------------------- */

/* One CLIENT LIST / CLIENT INFO line, in Redis's field order. */
static void client_line(const struct client *o, struct resp_buf *b) {
  char line[1024];
  int64_t now = now_ms();
  char flags[8], *f = flags;
  if (o->in_multi) *f++ = 'x';
  if (o->nsubs) *f++ = 'P';
  if (o->flags & CLIENT_CLOSE_ASAP) *f++ = 'A';
  if (o->flags & CLIENT_CLOSE_AFTER_REPLY) *f++ = 'c';
  if (o->unix_socket) *f++ = 'U';
  if (f == flags) *f++ = 'N';
  *f = '\0';
  int n = snprintf(line, sizeof line,
      "id=%llu addr=%s laddr=%s fd=%d name=%s age=%lld idle=%lld flags=%s "
      "db=%d sub=%zu psub=0 ssub=0 multi=%d qbuf=%zu qbuf-free=%zu "
      "argv-mem=0 multi-mem=0 rbs=%zu rbp=0 obl=0 oll=0 omem=%zu "
      "tot-mem=%zu events=r cmd=%s user=%s redir=-1 resp=%d lib-name=%s "
      "lib-ver=%s\n",
      (unsigned long long)o->id, o->addr, o->laddr, o->fd,
      o->name ? o->name : "", (long long)((now - o->created_ms) / 1000),
      (long long)((now - o->last_ms) / 1000), flags, o->db, o->nsubs,
      o->in_multi ? 0 : -1, o->in_len, o->in_cap - o->in_len, o->in_cap,
      o->out.cap, o->in_cap + o->out.cap + sizeof *o,
      o->last_cmd ? o->last_cmd : "NULL", o->user ? o->user : "default",
      o->proto, o->lib_name ? o->lib_name : "", o->lib_ver ? o->lib_ver : "");
  if (n > 0) resp_add_raw(b, line, MIN((size_t)n, sizeof line - 1));
}

static void client_list(struct client *c) {
  struct resp_buf b;
  int type = -1;  /* -1 all, 0 normal, 1 pubsub */
  resp_buf_init(&b);
  for (int i = 2; i < c->argc; i++) {
    if (cmd_arg_is(c, i, "TYPE") && i + 1 < c->argc) {
      i++;
      if (!strcasecmp(c->argv[i], "normal")) type = 0;
      else if (!strcasecmp(c->argv[i], "pubsub")) type = 1;
      else if (!strcasecmp(c->argv[i], "master") || !strcasecmp(c->argv[i], "replica")) type = 2;
      else {
        reply_errorf(c, "ERR Unknown client type '%.64s'", c->argv[i]);
        resp_buf_free(&b);
        return;
      }
    } else if (cmd_arg_is(c, i, "ID")) {
      for (i++; i < c->argc; i++) {
        long long id;
        if (cmd_parse_ll(c->argv[i], &id) || id <= 0) {
          reply_error(c, "ERR Invalid client ID");
          resp_buf_free(&b);
          return;
        }
        struct client *o = srv_client_by_id(c->srv, (uint64_t)id);
        if (o) client_line(o, &b);
      }
      goto done;
    } else {
      reply_error(c, ERR_SYNTAX);
      resp_buf_free(&b);
      return;
    }
  }
  for (struct client *o = c->srv->clients; o; o = o->next)
    if (type < 0 || type == (o->nsubs ? 1 : 0)) client_line(o, &b);
done:
  reply_verbatim(c, b.data ? b.data : "", b.len);
  resp_buf_free(&b);
}

/* CLIENT KILL addr (old form: OK or error) or CLIENT KILL <filter value>...
 * (new form: the number killed). */
static void client_kill(struct client *c) {
  if (c->argc == 3) {
    for (struct client *o = c->srv->clients; o; o = o->next)
      if (!strcmp(o->addr, c->argv[2])) {
        srv_client_close_asap(o);
        reply_ok(c);
        return;
      }
    reply_error(c, "ERR No such client");
    return;
  }
  long long id = 0;
  const char *addr = NULL, *laddr = NULL, *user = NULL;
  int skipme = 1;
  if ((c->argc - 2) % 2) {
    reply_error(c, ERR_SYNTAX);
    return;
  }
  for (int i = 2; i + 1 < c->argc; i += 2) {
    const char *v = c->argv[i + 1];
    if (cmd_arg_is(c, i, "ID")) {
      if (cmd_parse_ll(v, &id) || id <= 0) {
        reply_error(c, "ERR client-id should be greater than 0");
        return;
      }
    } else if (cmd_arg_is(c, i, "ADDR")) addr = v;
    else if (cmd_arg_is(c, i, "LADDR")) laddr = v;
    else if (cmd_arg_is(c, i, "USER")) user = v;
    else if (cmd_arg_is(c, i, "SKIPME")) skipme = strcasecmp(v, "no") != 0;
    else if (cmd_arg_is(c, i, "TYPE")) continue;
    else {
      reply_error(c, ERR_SYNTAX);
      return;
    }
  }
  long long killed = 0;
  for (struct client *o = c->srv->clients; o; o = o->next) {
    if ((id && o->id != (uint64_t)id) || (addr && strcmp(o->addr, addr)) ||
        (laddr && strcmp(o->laddr, laddr)) ||
        (user && strcmp(o->user ? o->user : "default", user)) ||
        (o == c && skipme))
      continue;
    srv_client_close_asap(o);
    killed++;
  }
  reply_int(c, killed);
}

static void client_setinfo(struct client *c) {
  if (c->argc != 4) {
    reply_error(c, "ERR wrong number of arguments for 'client|setinfo' command");
    return;
  }
  char **slot;
  if (cmd_arg_is(c, 2, "LIB-NAME")) slot = &c->lib_name;
  else if (cmd_arg_is(c, 2, "LIB-VER")) slot = &c->lib_ver;
  else {
    reply_errorf(c, "ERR Unrecognized option '%.64s'", c->argv[2]);
    return;
  }
  if (!valid_name(c->argv[3], c->argvlen[3]) || c->argvlen[3] > CLIENT_NAME_MAX) {
    reply_errorf(c, "ERR %s cannot contain spaces, newlines or special characters.",
                 slot == &c->lib_name ? "lib-name" : "lib-ver");
    return;
  }
  char *v = strndup(c->argv[3], c->argvlen[3]);
  if (!v) {
    reply_error(c, "OOM command not allowed: out of memory");
    return;
  }
  free(*slot);
  *slot = v;
  reply_ok(c);
}

static const char *const client_help[] = {
  "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
  "GETNAME", "    Return the name of the current connection.",
  "ID", "    Return the ID of the current connection.",
  "INFO", "    Return information about the current client connection.",
  "KILL <ip:port> | KILL <option> <value> [<option> <value> [...]]",
  "    Kill connections by address, ID, LADDR, USER or SKIPME.",
  "LIST [TYPE (NORMAL|PUBSUB)] [ID <id> [<id> ...]]",
  "    Return information about client connections.",
  "SETNAME <name>", "    Assign the name <name> to the current connection.",
  "SETINFO <LIB-NAME|LIB-VER> <value>", "    Set client library name or version.",
  "HELP", "    Print this help.", NULL};

static int client_simple(struct client *c) {
  if (cmd_arg_is(c, 1, "ID") && c->argc == 2) reply_int(c, (long long)c->id);
  else if (cmd_arg_is(c, 1, "GETNAME") && c->argc == 2) {
    if (c->name) reply_cstr(c, c->name);
    else reply_null(c);
  } else if (cmd_arg_is(c, 1, "SETNAME") && c->argc == 3) {
    if (!set_name(c, c->argv[2], c->argvlen[2])) reply_ok(c);
  } else if (cmd_arg_is(c, 1, "INFO") && c->argc == 2) {
    struct resp_buf b;
    resp_buf_init(&b);
    client_line(c, &b);
    reply_verbatim(c, b.data ? b.data : "", b.len);
    resp_buf_free(&b);
  } else if (cmd_arg_is(c, 1, "HELP") && c->argc == 2) {
    reply_help(c, client_help);
  } else if ((cmd_arg_is(c, 1, "NO-EVICT") || cmd_arg_is(c, 1, "NO-TOUCH")) && c->argc == 3) {
    reply_ok(c);  /* nothing is evicted for good here; accepted as Redis does */
  } else {
    return 0;
  }
  return 1;
}

void cmd_client(struct client *c) {
  if (client_simple(c)) return;
  if (cmd_arg_is(c, 1, "LIST")) client_list(c);
  else if (cmd_arg_is(c, 1, "KILL") && c->argc >= 3) client_kill(c);
  else if (cmd_arg_is(c, 1, "SETINFO")) client_setinfo(c);
  else if (cmd_arg_is(c, 1, "ID") || cmd_arg_is(c, 1, "GETNAME") || cmd_arg_is(c, 1, "SETNAME") ||
           cmd_arg_is(c, 1, "INFO") || cmd_arg_is(c, 1, "KILL"))
    reply_errorf(c, "ERR wrong number of arguments for 'client|%s' command",
                 c->argv[1]);
  else reply_unknown_sub(c, "CLIENT");
}

/* ------------------------------------------------------------------------
 * COMMAND
 * --------------------------------------------------------------------- */

static void command_flags(struct client *c, unsigned f) {
  static const struct { unsigned bit; const char *name; } names[] = {
    {CMD_WRITE, "write"}, {CMD_READONLY, "readonly"}, {CMD_ADMIN, "admin"},
    {CMD_PUBSUB, "pubsub"}, {CMD_NOAUTH, "no_auth"}, {CMD_NOMULTI, "no_multi"},
    {CMD_FAST, "fast"}, {CMD_LOADING, "loading"}};
  size_t n = 0;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (f & names[i].bit) n++;
  reply_set(c, n);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (f & names[i].bit) reply_status(c, names[i].name);
}

static void command_info_one(struct client *c, const struct cmd *k) {
  char cat[40];
  reply_array(c, 10);
  reply_cstr(c, k->name);
  reply_int(c, k->arity);
  command_flags(c, k->flags);
  reply_int(c, k->first_key);
  reply_int(c, k->last_key);
  reply_int(c, k->key_step);
  snprintf(cat, sizeof cat, "@%s", k->group);
  reply_set(c, 1);
  reply_status(c, cat);
  reply_set(c, 0);   /* tips */
  reply_array(c, 0); /* key specifications */
  reply_array(c, 0); /* subcommands */
}

static void command_docs_one(struct client *c, const struct cmd *k) {
  reply_cstr(c, k->name);
  reply_map(c, 3);
  reply_cstr(c, "summary");
  reply_cstr(c, k->summary ? k->summary : "");
  reply_cstr(c, "since");
  reply_cstr(c, "1.0.0");
  reply_cstr(c, "group");
  reply_cstr(c, k->group);
}

static size_t linked_count(void) {
  size_t n = 0;
  for (size_t i = 0; i < cmd_count; i++) n += cmd_table[i].proc != NULL;
  return n;
}

static void command_docs(struct client *c) {
  if (c->argc == 2) {
    reply_map(c, linked_count());
    for (size_t i = 0; i < cmd_count; i++)
      if (cmd_table[i].proc) command_docs_one(c, &cmd_table[i]);
    return;
  }
  size_t n = 0;
  for (int i = 2; i < c->argc; i++) n += cmd_lookup(c->argv[i], c->argvlen[i]) != NULL;
  reply_map(c, n);
  for (int i = 2; i < c->argc; i++) {
    const struct cmd *k = cmd_lookup(c->argv[i], c->argvlen[i]);
    if (k) command_docs_one(c, k);
  }
}

void cmd_command(struct client *c) {
  if (c->argc == 1) {
    reply_array(c, linked_count());
    for (size_t i = 0; i < cmd_count; i++)
      if (cmd_table[i].proc) command_info_one(c, &cmd_table[i]);
  } else if (cmd_arg_is(c, 1, "COUNT") && c->argc == 2) {
    reply_int(c, (long long)linked_count());
  } else if (cmd_arg_is(c, 1, "INFO")) {
    if (c->argc == 2) {
      reply_array(c, linked_count());
      for (size_t i = 0; i < cmd_count; i++)
        if (cmd_table[i].proc) command_info_one(c, &cmd_table[i]);
      return;
    }
    reply_array(c, (size_t)c->argc - 2);
    for (int i = 2; i < c->argc; i++) {
      const struct cmd *k = cmd_lookup(c->argv[i], c->argvlen[i]);
      if (k) command_info_one(c, k);
      else reply_null_array(c);
    }
  } else if (cmd_arg_is(c, 1, "DOCS")) {
    command_docs(c);
  } else if (cmd_arg_is(c, 1, "LIST") && c->argc == 2) {
    reply_array(c, linked_count());
    for (size_t i = 0; i < cmd_count; i++)
      if (cmd_table[i].proc) reply_cstr(c, cmd_table[i].name);
  } else if (cmd_arg_is(c, 1, "HELP")) {
    static const char *const help[] = {
      "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
      "(no subcommand)", "    Return details about all commands.",
      "COUNT", "    Return the total number of commands in this server.",
      "LIST", "    Return a list of all commands in this server.",
      "INFO [<command-name> ...]", "    Return details about the given commands.",
      "DOCS [<command-name> ...]", "    Return documentation details about the given commands.",
      "HELP", "    Print this help.", NULL};
    reply_help(c, help);
  } else {
    reply_unknown_sub(c, "COMMAND");
  }
}
