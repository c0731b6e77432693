/* LLaVA backend for `vlmn record`: image load + preprocessing, prompt template with
 * per-position labels, engine forward with the recorder as capture hook. */
#include "run/record_run.h"

vlmn_status vlmn_backend_llava_create(const vlmn_record_opts *o, vlmn_rec_backend *be)
{
    (void)o;
    (void)be;
    return vlmn_error(VLMN_E_UNSUPPORTED,
                      "this build has no LLaVA engine yet (engine/tok/image modules not merged); use --synthetic");
}
