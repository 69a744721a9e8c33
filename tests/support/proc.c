/* Child processes for tests (see proc.h). */
#include "proc.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "timing.h"

static void truncate_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_msg(fd >= 0, "cannot create %s", path);
	close(fd);
}

static void redirect(const char *path, int flags, int target)
{
	int fd = open(path, flags);
	if (fd < 0)
		_exit(126);
	dup2(fd, target);
	close(fd);
}

static void apply_env(const char *const *env)
{
	for (size_t i = 0; env && env[i]; i++) {
		const char *eq = strchr(env[i], '=');
		if (!eq) {
			unsetenv(env[i]);
			continue;
		}
		char name[128];
		size_t n = (size_t)(eq - env[i]);
		if (n >= sizeof(name))
			_exit(126);
		memcpy(name, env[i], n);
		name[n] = '\0';
		setenv(name, eq + 1, 1);
	}
}

pid_t test_spawn(const char *const argv[], const struct test_spawn *o)
{
	static const struct test_spawn none = { NULL, NULL, NULL, NULL };
	if (!o)
		o = &none;
	if (o->out)
		truncate_file(o->out);
	if (o->err)
		truncate_file(o->err);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		redirect(o->in ? o->in : "/dev/null", O_RDONLY, 0);
		redirect(o->out ? o->out : "/dev/null", O_WRONLY | O_APPEND, 1);
		if (o->err)
			redirect(o->err, O_WRONLY | O_APPEND, 2);
		else
			dup2(1, 2);
		apply_env(o->env);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

int test_wait_exit(pid_t pid, int base_ms)
{
	struct veil_deadline d = veil_deadline_in(base_ms);
	for (;;) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (veil_deadline_passed(&d))
			break;
		veil_poll_pause();
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

void test_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	if (test_wait_exit(pid, 3000) == -1)
		fprintf(stderr, "pid %d needed SIGKILL\n", (int)pid);
}
