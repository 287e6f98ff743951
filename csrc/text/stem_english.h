// The Snowball English ("Porter2") stemmer.
#pragma once

#include <string>

namespace ragkernels::text {

// Stems one lowercase UTF-8 word in place, giving exactly the output of
// Snowball's english stemmer (libstemmer / PyStemmer `Stemmer.Stemmer("english")`).
void stem_english(std::string& word);

}  // namespace ragkernels::text
