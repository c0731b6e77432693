/* `vlmn info` on a Hugging Face folder (src/cli/info_hf.c). */
#ifndef VLMN_CLI_INFO_HF_H
#define VLMN_CLI_INFO_HF_H
#include <stdbool.h>
/* Print DIR's description (text or one JSON line); returns the exit status. */
int vlmn_info_hf(const char *dir, bool json);
#endif
