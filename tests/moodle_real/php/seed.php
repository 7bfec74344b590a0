<?php
// Test data for the real-Moodle suite: one course, a teacher, students, a quiz, an assignment, a
// page, and mobile web-service tokens so the users act through web services like the app does.
// Usage: php seed.php --tag=X --students=N  (prints one JSON object)

define('CLI_SCRIPT', true);
require(getenv('MOODLE_DIR') . '/config.php');
require_once($CFG->libdir . '/clilib.php');
require_once($CFG->dirroot . '/lib/phpunit/classes/util.php');
require_once($CFG->dirroot . '/mod/quiz/locallib.php');
require_once($CFG->dirroot . '/question/engine/bank.php');

[$options] = cli_get_params(['tag' => 'c', 'students' => 4, 'silent' => 1]);
\core\session\manager::set_user(get_admin());
$gen = phpunit_util::get_data_generator();
$tag = clean_param($options['tag'], PARAM_ALPHANUMEXT);
$now = time();

// Students and teachers use the Moodle app's service, as a real site allows.
set_config('enablewebservices', 1);
set_config('enablemobilewebservice', 1);
$protocols = array_filter(explode(',', (string)get_config('core', 'webserviceprotocols')));
if (!in_array('rest', $protocols, true)) {
    $protocols[] = 'rest';
    set_config('webserviceprotocols', implode(',', $protocols));
}
$userrole = $DB->get_field('role', 'id', ['shortname' => 'user']);
assign_capability('webservice/rest:use', CAP_ALLOW, $userrole, context_system::instance()->id, true);
$mobile = $DB->get_record('external_services', ['shortname' => MOODLE_OFFICIAL_MOBILE_SERVICE], '*', MUST_EXIST);
if (!$mobile->enabled) {
    $mobile->enabled = 1;
    $DB->update_record('external_services', $mobile);
}

$course = $gen->create_course(['shortname' => "rs-$tag", 'fullname' => "RiskStream test's course $tag",
    'startdate' => $now - 10 * DAYSECS, 'enddate' => $now + 60 * DAYSECS, 'enablecompletion' => 1]);
$mk = function(string $name) use ($gen, $tag) {
    return $gen->create_user(['username' => "$name-$tag", 'firstname' => ucfirst($name), 'lastname' => $tag,
        'password' => 'Pass-word-1']);
};
$teacher = $mk('teacher');
$gen->enrol_user($teacher->id, $course->id, 'editingteacher');
$students = [];
for ($i = 1; $i <= (int)$options['students']; $i++) {
    $s = $mk("student$i");
    $gen->enrol_user($s->id, $course->id, 'student');
    $students[] = $s;
}
$noshow = $mk('noshow');
$gen->enrol_user($noshow->id, $course->id, 'student');

$page = $gen->create_module('page', ['course' => $course->id, 'name' => 'Week 1 reading']);
$quiz = $gen->get_plugin_generator('mod_quiz')->create_instance(['course' => $course->id, 'name' => 'Quiz 1',
    'timeclose' => $now + 7 * DAYSECS, 'grade' => 10, 'sumgrades' => 1, 'questionsperpage' => 0]);
$assign = $gen->create_module('assign', ['course' => $course->id, 'name' => 'Essay 1',
    'duedate' => $now + 5 * DAYSECS, 'assignsubmission_onlinetext_enabled' => 1,
    'submissiondrafts' => 0, 'requiresubmissionstatement' => 0]);

// One true/false question (the question generator needs PHPUnit; the question bank API does not).
$qbank = \core_question\local\bank\question_bank_helper::get_default_open_instance_system_type($course, true);
$cat = question_get_default_category(context_module::instance($qbank->id)->id, true);
$form = (object)[
    'category' => $cat->id, 'name' => 'Is the sky blue?', 'questiontext' => ['text' => 'Is the sky blue?',
    'format' => FORMAT_HTML], 'generalfeedback' => ['text' => '', 'format' => FORMAT_HTML], 'defaultmark' => 1,
    'penalty' => 1, 'correctanswer' => '1', 'feedbacktrue' => ['text' => '', 'format' => FORMAT_HTML],
    'feedbackfalse' => ['text' => '', 'format' => FORMAT_HTML], 'showstandardinstruction' => 0, 'status' => 'ready',
];
$question = (object)['category' => $cat->id, 'qtype' => 'truefalse', 'createdby' => get_admin()->id];
$question = question_bank::get_qtype('truefalse')->save_question($question, $form);
quiz_add_quiz_question($question->id, $quiz, 0, 1);
\mod_quiz\quiz_settings::create($quiz->id)->get_grade_calculator()->recompute_quiz_sumgrades();

$tokens = [];
foreach (array_merge([$teacher, $noshow], $students) as $u) {
    $tokens[$u->id] = \core_external\util::generate_token(EXTERNAL_TOKEN_PERMANENT, $mobile, $u->id,
        context_system::instance());
}
echo json_encode([
    'course' => (int)$course->id,
    'teacher' => (int)$teacher->id,
    'students' => array_map(fn($s) => (int)$s->id, $students),
    'noshow' => (int)$noshow->id,
    'tokens' => $tokens,
    'quiz' => (int)$quiz->id,
    'quizcmid' => (int)$quiz->cmid,
    'assign' => (int)$assign->id,
    'page' => (int)$page->id,
    'pagecmid' => (int)$page->cmid,
]), "\n";
