#include "text/stem_english.h"

namespace ragkernels::text {

void stem_english(std::string& word) { (void)word; }  // placeholder: being written

}  // namespace ragkernels::text
