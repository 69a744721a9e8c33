/*
 * The Argon2id budget of password logins (docs/AUTH.md, "Rate limit").
 * Argon2id runs on the broker's only thread, so its time is budgeted: at
 * most plugin_opt_password_ms_per_sec milliseconds per second (and
 * password_hashes_per_sec runs); a run that does not fit is refused
 * ("busy", the client retries). A run fits when this second's spent time
 * plus the expected cost of one run (moving average of measured runs)
 * stays within the budget. A run for a user with failed logins on record (a
 * suspect: the back-off's user key) must also fit in half the budget with
 * the other suspects' runs of this second. Two runs a second go anyway:
 * - the first run of a second, whoever's (a budget smaller than one run
 *   still lets logins through);
 * - one more run for a user without failures on record. A burst of guesses
 *   at one account has one such run (its first guess; the next ones are a
 *   suspect's, one per back-off block), so the next valid login of another
 *   user is not "busy" because of it, even behind a load balancer, where no
 *   address key stops the burst, and on a machine where one run costs more
 *   than the budget. Guesses at many usernames at once still can make it
 *   busy (limit them per source at the load balancer).
 * So a second spends at most the budget plus one run, or two runs where one
 * run costs more than the budget (as far as the moving average predicts a
 * run's cost).
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "auth_private.h"
#include "ratelimit.h"

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000U + (uint64_t)ts.tv_nsec / 1000U;
}

bool vp_auth__hash_budget(struct vp_auth *a, bool suspect)
{
	uint64_t now = vp_ratelimit__now_ms();
	if (now - a->hash_window_ms >= 1000) {
		a->hash_window_ms = now;
		a->hashes_in_window = 0;
		a->clean_over_in_window = false;
		a->hash_us_in_window = a->suspect_us_in_window = 0;
	}
	if (a->hashes_in_window >= a->password_hashes_per_sec)
		return false;
	uint64_t budget = (uint64_t)a->password_ms_per_sec * 1000U, est = a->hash_us_estimate;
	bool fits = a->hash_us_in_window + est <= budget;
	if (suspect)
		fits = fits && a->suspect_us_in_window + est <= budget / 2;
	if (!fits && a->hashes_in_window > 0) {
		if (suspect || a->clean_over_in_window)
			return false;
		a->clean_over_in_window = true;
	}
	a->hashes_in_window++;
	return true;
}

bool vp_auth__hash_verify(struct vp_auth *a, const char *stored, const char *password, bool suspect)
{
	uint64_t t0 = mono_us();
	bool ok = crypto_pwhash_str_verify(stored, password, strlen(password)) == 0;
	uint64_t spent = mono_us() - t0;
	a->hash_us_in_window += spent;
	if (suspect)
		a->suspect_us_in_window += spent;
	a->hash_us_estimate = a->hash_us_estimate ? (a->hash_us_estimate * 3U + spent) / 4U : spent;
	a->hashes_total++;
	a->hash_us_total += spent;
	return ok;
}
