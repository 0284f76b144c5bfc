/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <sys/stat.h>

#include "log.h"
#include "tap.h"
#include "util.h"

static void test_timestamp(void)
{
        char buf[TIMESTAMP_MAX];

        is_str(format_timestamp(buf, 0), "1970-01-01T00:00:00.000Z", "epoch formats as ISO 8601 UTC");
        is_str(format_timestamp(buf, 1767174900123456ULL), "2025-12-31T09:55:00.123Z",
               "milliseconds are kept, microseconds dropped");

        uint64_t usec = 1;
        ok(parse_timestamp("2025-12-31T09:55:00.123Z", &usec) == 0 && usec == 1767174900123000ULL,
           "a timestamp reads back to the millisecond");
        ok(parse_timestamp("1970-01-01T00:00:00.000Z", &usec) == 0 && usec == 0, "the epoch reads back");
        ok(parse_timestamp("2025-12-31T09:55:00Z", &usec) == -EINVAL &&
                   parse_timestamp("2025-12-31T09:55:00.123Zx", &usec) == -EINVAL &&
                   parse_timestamp("2025-12-31 09:55:00.123Z", &usec) == -EINVAL &&
                   parse_timestamp("", &usec) == -EINVAL && parse_timestamp(NULL, &usec) == -EINVAL,
           "anything else is refused");
}

static void test_uuid(void)
{
        char a[UUID_STRING_MAX], b[UUID_STRING_MAX];

        ok(uuid_v4_string(a) == 0 && uuid_v4_string(b) == 0, "uuids are generated");
        is_int(strlen(a), 36, "a uuid has 36 characters");
        ok(a[14] == '4', "version nibble is 4");
        ok(strchr("89ab", a[19]) != NULL, "variant bits are RFC 4122");
        ok(strcmp(a, b) != 0, "two uuids differ");
}

static void test_utf8(void)
{
        ok(utf8_is_valid("plain", 5), "ASCII is valid");
        ok(utf8_is_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14),
           "2, 3 and 4 byte sequences are valid");
        ok(!utf8_is_valid("\xc0\xaf", 2), "overlong encoding is refused");
        ok(!utf8_is_valid("\xed\xa0\x80", 3), "UTF-16 surrogate is refused");
        ok(!utf8_is_valid("\xf4\x90\x80\x80", 4), "code point above U+10FFFF is refused");
        ok(!utf8_is_valid("\xe2\x82", 2), "truncated sequence is refused");
        ok(!utf8_is_valid("\x80", 1), "lone continuation byte is refused");
}

static void test_parse_uint64(void)
{
        uint64_t v = 0;

        ok(parse_uint64("18446744073709551615", &v) == 0 && v == UINT64_MAX, "largest value parses");
        is_int(parse_uint64("18446744073709551616", &v), -ERANGE, "overflow is -ERANGE");
        is_int(parse_uint64("12a", &v), -EINVAL, "trailing garbage is -EINVAL");
        is_int(parse_uint64("", &v), -EINVAL, "empty string is -EINVAL");
        is_int(parse_uint64("-1", &v), -EINVAL, "negative is -EINVAL");
}

static void test_mkdir_parents(void)
{
        char dir[] = "/tmp/nb-test-util-XXXXXX", path[256];
        struct stat st;

        ok(mkdtemp(dir) != NULL, "temporary directory");
        snprintf(path, sizeof(path), "%s/a/b/c", dir);
        is_int(mkdir_parents(path, 0700), 0, "nested directories are created");
        ok(stat(path, &st) == 0 && S_ISDIR(st.st_mode), "the leaf exists");
        is_int(mkdir_parents(path, 0700), 0, "creating it again is fine");
        snprintf(path, sizeof(path), "rm -rf %s", dir);
        ok(system(path) == 0, "cleanup");
}

static void test_log(void)
{
        is_int(log_level_from_string("debug"), LOG_DEBUG, "debug level parses");
        is_int(log_level_from_string("error"), LOG_ERR, "error is an alias of err");
        is_int(log_level_from_string("loud"), -EINVAL, "unknown level is refused");
        is_int(log_error_errno(-ENOENT, "test message: %m"), -ENOENT, "log_error_errno returns the error");
        is_int(log_debug_errno(EIO, "not shown"), -EIO, "a positive errno comes back negative");
}

/* Random puts and removes against a plain array that knows the truth; removal's back-shift is the
 * part that can go wrong, so keys are few and collide often. */
static void test_strmap(void)
{
        StrMap m = { 0 };
        void *truth[300] = { 0 };
        unsigned seed = 12345, bad = 0;
        char key[16];

        for (int step = 0; step < 20000; step++) {
                unsigned k = (seed = seed * 1103515245 + 12345) % 300;

                snprintf(key, sizeof(key), "k%u", k);
                if ((seed >> 16) % 3 == 0) {
                        bad += strmap_remove(&m, key) != truth[k];
                        truth[k] = NULL;
                } else {
                        void *v = (void *)(uintptr_t)(step + 1);

                        bad += strmap_put(&m, key, v) != (truth[k] ? 1 : 0);
                        truth[k] = v;
                }
                if (step % 97 == 0)
                        for (unsigned i = 0; i < 300; i++) {
                                snprintf(key, sizeof(key), "k%u", i);
                                bad += strmap_get(&m, key) != truth[i];
                        }
        }
        ok(bad == 0, "strmap agrees with a plain array over 20000 random puts and removes (%u wrong)", bad);
        strmap_done(&m);
        ok(strmap_get(&m, "k1") == NULL && strmap_remove(&m, "k1") == NULL, "an empty strmap finds nothing");
}

static void test_ratelimit(void)
{
        RateLimit rl = { 0 };
        unsigned more = 99;

        ok(ratelimit_pass(&rl, USEC_PER_SEC, &more) && more == 0, "ratelimit: the first passes");
        ok(!ratelimit_pass(&rl, USEC_PER_SEC, &more), "ratelimit: the next within the interval does not");
        ok(!ratelimit_pass(&rl, USEC_PER_SEC, &more), "ratelimit: nor the one after");
        rl.last -= USEC_PER_SEC; /* the interval is over */
        ok(ratelimit_pass(&rl, USEC_PER_SEC, &more) && more == 2,
           "ratelimit: then one passes, counting the 2 held");
}

int main(void)
{
        test_strmap();
        test_ratelimit();
        test_timestamp();
        test_uuid();
        test_utf8();
        test_parse_uint64();
        test_mkdir_parents();
        test_log();
        return tap_done();
}
