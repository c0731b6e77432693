/* `vlmn info` on a Hugging Face folder (src/cli/info_hf.c). */
#ifndef VLMN_CLI_INFO_HF_H
#define VLMN_CLI_INFO_HF_H
#include <stdbool.h>
/* Print DIR's description (text or one JSON line); returns the exit status. */
int vlmn_info_hf(const char *dir, bool json);
/* --template auto: the folder's chat template (vlmn_hf_chat_template), llava-v1 for GGUF
 * models and folders without one. Other names pass through. 0, or 1 after printing the
 * error of an unknown chat template. */
int vlmn_cli_template(const char *cmd, const char *model, const char **tmpl);
#endif
